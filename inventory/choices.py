"""Choices of the inventory, named once (compare with these, never with bare strings)."""

from django.db import models


class Protocol(models.TextChoices):
    TCP = "tcp", "TCP"
    UDP = "udp", "UDP"
    SCTP = "sctp", "SCTP"


class PortState(models.TextChoices):
    """What PortWatch believes about a port.

    nmap's ambiguous states (``open|filtered``, ``closed|filtered``) are kept
    as filtered: a port is only ``open`` when something answered on it.
    """

    OPEN = "open", "open"
    FILTERED = "filtered", "filtered"
    CLOSED = "closed", "closed"


class HostStatus(models.TextChoices):
    UP = "up", "up"
    # Known host that did not respond to the last completed scan covering it.
    UNREACHABLE = "unreachable", "unreachable"
