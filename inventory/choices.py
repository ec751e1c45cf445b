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


class Severity(models.IntegerChoices):
    """How bad an exposed port of this kind is; ordered, so the worst sorts first."""

    INFO = 0, "info"
    LOW = 1, "low"
    MEDIUM = 2, "medium"
    HIGH = 3, "high"
    CRITICAL = 4, "critical"


class RiskCategory(models.TextChoices):
    REMOTE_ADMIN = "remote-admin", "remote administration"
    DATABASE = "database", "database"
    CACHE = "cache", "cache"
    BROKER = "broker", "message broker"
    CONTROL_PLANE = "control-plane", "container / cluster control plane"
    DEBUG = "debug", "debug endpoint"
    CLEAR_TEXT = "clear-text", "clear-text protocol"
    FILE_SHARING = "file-sharing", "file sharing"
