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


# Risk of a port no rule of the risk table matches (below every Severity).
NO_RISK = -1


class RiskCategory(models.TextChoices):
    REMOTE_ADMIN = "remote-admin", "remote administration"
    DATABASE = "database", "database"
    CACHE = "cache", "cache"
    BROKER = "broker", "message broker"
    CONTROL_PLANE = "control-plane", "container / cluster control plane"
    DEBUG = "debug", "debug endpoint"
    CLEAR_TEXT = "clear-text", "clear-text protocol"
    FILE_SHARING = "file-sharing", "file sharing"


class Decision(models.TextChoices):
    """What a reviewer decided about a port."""

    APPROVED = "approved", "approved"
    # A violation while the port is open: it must be closed.
    REJECTED = "rejected", "rejected"


class PolicyStatus(models.TextChoices):
    """Where an open port stands under the port rules (see ``inventory.policy``)."""

    UNREVIEWED = "unreviewed", "unreviewed"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"


class RuleScope(models.TextChoices):
    """Where a port rule applies; ``SCOPE_RANK`` orders them, most specific last."""

    GLOBAL = "global", "everywhere"
    ZONE = "zone", "zone"
    TAG = "tag", "tag"
    CIDR = "cidr", "network (CIDR)"
    HOST = "host", "single host"


# The most specific scope wins: a host beats a network, a network a tag, a
# tag a zone, a zone everywhere (a network is cut narrower than a tag, which
# can span zones).
SCOPE_RANK = {
    RuleScope.GLOBAL: 0,
    RuleScope.ZONE: 1,
    RuleScope.TAG: 2,
    RuleScope.CIDR: 3,
    RuleScope.HOST: 4,
}

# A rule's protocol may also be "any".
ANY_PROTOCOL = "any"
RULE_PROTOCOL_CHOICES = [*Protocol.choices, (ANY_PROTOCOL, "any")]
