"""The inventory: what PortWatch currently believes is on the network.

Scans write these rows through the diff engine (``scans.ingest``) in the same
transaction as the changes that explain them; nothing else changes a host's
reachability or a service's state.
"""

import hashlib
import ipaddress
import uuid
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from inventory.choices import (
    NO_RISK,
    RULE_PROTOCOL_CHOICES,
    SCOPE_RANK,
    Decision,
    HostStatus,
    PolicyStatus,
    PortState,
    Protocol,
    RiskCategory,
    RuleScope,
    Severity,
)
from inventory.constants import DEFAULT_ZONE, PORT_MAX, PORT_MIN, SERVICE_TEXT_MAX_LENGTH
from inventory.lookups import InCidr  # noqa: F401  (registers address__in_cidr)
from inventory.ports import PortSet
from portwatch.choices_display import display
from portwatch.links import Link

# Links every list row makes (portwatch.links: reverse() without its per-call set-up).
HOST_URL = Link("host-detail")
PORT_URL = Link("port-detail")
RULE_URL = Link("rule-detail")


class Zone(models.Model):
    """A network segment. Addresses are unique within a zone, not across
    zones: 10.0.0.5 in one data centre is a different machine from 10.0.0.5 in
    another. Scans of a zone run on the workers that consume its queue."""

    name = models.SlugField(max_length=63, unique=True)
    description = models.CharField(max_length=255, blank=True)
    # Central workers scan this zone. Off for a segment only reachable from
    # inside: its own workers (run_worker --zone NAME) scan it, and a central
    # worker, which would see every host as unreachable, never does.
    central = models.BooleanField(
        default=True,
        verbose_name="Scanned by central workers",
        help_text="Turn off when only workers inside this network segment can reach it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @classmethod
    def default(cls) -> "Zone":
        zone, _ = cls.objects.get_or_create(name=DEFAULT_ZONE, defaults={"description": "Default zone"})
        return zone


class ProbedPortSet(models.Model):
    """A set of probed ports (protocol -> port ranges), stored once.

    A host points at the set its last answering scan probed: every open port
    of the host within that set was seen then, so a service's "last seen" is
    derived from the host instead of being rewritten on every scan (see
    ``Service.seen_at``).
    """

    key = models.CharField(max_length=64, unique=True)
    ports = models.JSONField()

    def __str__(self):
        return ", ".join(f"{protocol}: {ports}" for protocol, ports in sorted(self.ports.items()))

    @classmethod
    def key_for(cls, ports: dict[str, str]) -> str:
        canonical = ";".join(f"{protocol}:{ports[protocol]}" for protocol in sorted(ports))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def for_ports(cls, probed: dict) -> "ProbedPortSet":
        """The row for ``probed`` (protocol -> PortSet or text), created if new."""
        ports = {protocol: str(value) for protocol, value in probed.items()}
        row, _ = cls.objects.get_or_create(key=cls.key_for(ports), defaults={"ports": ports})
        return row

    def covers(self, protocol: str, port: int) -> bool:
        return port in self.port_set(protocol)

    def port_set(self, protocol: str) -> PortSet:
        return _parsed_ports(self.pk, protocol, self.ports.get(protocol, ""))


def risk_label(value: int) -> str:
    """ "high", "critical"... or "" for NO_RISK."""
    return Severity(value).label if value in Severity.values else ""


@lru_cache(maxsize=256)
def _parsed_ports(set_id: int, protocol: str, text: str) -> PortSet:
    return PortSet.from_nmap(text)


class Host(models.Model):
    """One address in one zone that has answered a scan at least once."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, related_name="hosts")
    address = models.GenericIPAddressField(unpack_ipv4=True)
    hostnames = models.JSONField(default=list, blank=True)
    # What people call it (web-1, the billing database): set by people, never by a
    # scan (hostnames are what the network says). A database default: the ingest
    # inserts hosts naming its columns, and the new ones get it too.
    name = models.CharField(max_length=150, blank=True, default="", db_default="", help_text="What people call it.")
    status = models.CharField(max_length=16, choices=HostStatus.choices, default=HostStatus.UP)
    owner = models.CharField(max_length=150, blank=True)
    # The assignment rule that set the owner; None when a person set it (a
    # rule never overwrites a person's choice).
    owner_rule = models.ForeignKey(
        "AssignmentRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    tags = models.ManyToManyField("Tag", through="HostTag", related_name="hosts", blank=True)
    first_seen = models.DateTimeField()
    # Last time the host answered a scan.
    last_seen = models.DateTimeField()
    # Last completed scan that covered the host, whether it answered or not.
    last_scanned = models.DateTimeField()
    # What the scan that last saw the host probed (None: nothing reliable,
    # e.g. nmap gave up on the host part-way).
    seen_ports = models.ForeignKey(ProbedPortSet, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Signature of the port list of the last scan, set when applying that scan
    # left nothing pending: an identical next observation (the common case)
    # changes nothing, and the SQL engine skips its per-port diff.
    ports_sig = models.BigIntegerField(null=True, blank=True, editable=False)
    # A summary of the host's ports, kept by inventory.policy.refresh_hosts
    # whenever a scan, a rule or a review changes them: the host list sorts
    # and filters 100,000 hosts on these columns instead of counting ports.
    # (db_default: the SQL diff engine inserts hosts without naming them.)
    open_count = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    unreviewed_count = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    violating_count = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    # Highest Severity among the open ports; NO_RISK when none of them is risky.
    risk = models.SmallIntegerField(default=NO_RISK, db_default=NO_RISK, editable=False)
    # When one of its ports last changed (opened, closed, filtered, service).
    last_change_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["zone", "address"], name="host_unique_zone_address"),
        ]
        indexes = [
            # The ingest looks hosts up by address across a batch.
            models.Index(fields=["address"], name="host_address_idx"),
            # Sort orders of the host list.
            models.Index(fields=["-risk", "address"], name="host_risk_idx"),
            models.Index(fields=["-violating_count", "address"], name="host_violating_idx"),
            models.Index(fields=["-unreviewed_count", "address"], name="host_unreviewed_idx"),
            models.Index(fields=["-open_count", "address"], name="host_open_idx"),
            # With the id, the keyset pages' tiebreaker (inventory.paging): the
            # hosts that never changed (NULL) are paged by id within this index.
            models.Index(fields=["-last_change_at", "-id"], name="host_last_change_id_idx"),
        ]
        ordering = ["zone__name", "address"]

    def __str__(self):
        return self.address

    def get_absolute_url(self):
        return HOST_URL(self.public_id)

    @property
    def hostname(self) -> str:
        return self.hostnames[0] if self.hostnames else ""

    @property
    def risk_label(self) -> str:
        return risk_label(self.risk)


def with_tag_list(hosts):
    """``hosts`` with their tags, read with tags_of(host). Prefetch(to_attr) sets one
    attribute per host, where prefetch_related("tags") builds a related manager and
    a queryset for each (a sixth of the API's host list)."""
    return hosts.prefetch_related(models.Prefetch("tags", to_attr="tag_list"))


def tags_of(host: Host):
    """The host's tags: those with_tag_list read, else its manager's (prefetched or queried)."""
    tags = getattr(host, "tag_list", None)
    return host.tags.all() if tags is None else tags


class Service(models.Model):
    """One port of one host: its last known state and what answered on it.

    Closed ports keep their row, so history reads naturally and a port that
    opens again is recognised as reopened rather than new.
    """

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="services")
    protocol = models.CharField(max_length=4, choices=Protocol.choices)
    port = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=PortState.choices)
    name = models.CharField(max_length=64, blank=True)
    product = models.CharField(max_length=SERVICE_TEXT_MAX_LENGTH, blank=True)
    version = models.CharField(max_length=SERVICE_TEXT_MAX_LENGTH, blank=True)
    extrainfo = models.CharField(max_length=SERVICE_TEXT_MAX_LENGTH, blank=True)
    # The fields above come from version detection (nmap -sV), not from a
    # guess by port number; a guess never overwrites an identification.
    identified = models.BooleanField(default=False)
    # Output of the allowlisted NSE scripts of the last scan that ran them.
    scripts = models.JSONField(default=dict, blank=True)
    # The host stopped answering: the state is the last one seen, not a fresh one.
    stale = models.BooleanField(default=False)
    # The port toggled open/closed FLAP_THRESHOLD times within FLAP_WINDOW:
    # its changes are still recorded, alerts about it are damped.
    flapping = models.BooleanField(default=False)
    first_seen = models.DateTimeField()
    # See seen_at: while the port stays within the host's probed coverage,
    # this is only written when the port changes.
    last_seen = models.DateTimeField()
    last_changed = models.DateTimeField()
    # Where the port stands under the port rules, and the rule behind it
    # (None: no rule, so unreviewed). Kept by inventory.policy; NULL status
    # means "not evaluated yet" (a row the diff engine just inserted).
    policy_status = models.CharField(  # noqa: DJ001  (NULL is "not evaluated", apart from "")
        max_length=12, choices=PolicyStatus.choices, null=True, blank=True, editable=False
    )
    policy_rule = models.ForeignKey(
        "PortRule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="services",
        editable=False,
        db_index=False,  # see service_rule_idx: most ports have no rule
    )
    # Severity from the risk table; NO_RISK: not a risky kind of port. (A
    # number, not NULL, so that sorting riskiest first needs no NULLS LAST,
    # which SQLite's indexes do not support.)
    risk = models.SmallIntegerField(default=NO_RISK, db_default=NO_RISK, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["host", "protocol", "port"], name="service_unique_host_protocol_port"),
            models.CheckConstraint(
                condition=models.Q(port__gte=PORT_MIN, port__lte=PORT_MAX), name="service_port_in_range"
            ),
        ]
        indexes = [
            # Ports view and overview counts: "every host with 6379 open".
            # (Ending in host: a page of one port's hosts is read in index order.)
            models.Index(fields=["state", "port", "host"], name="service_state_port_idx"),
            # The scheduler tick clears settled flapping marks (a handful of rows).
            models.Index(fields=["last_changed"], condition=models.Q(flapping=True), name="service_flapping_idx"),
            # A rule's ports (rule page, expiry, deletion). Partial: most ports
            # have no rule, and a full index would be written for every new port.
            models.Index(
                fields=["policy_rule"], condition=models.Q(policy_rule__isnull=False), name="service_rule_idx"
            ),
            # Rows the policy has yet to evaluate (after every ingest).
            models.Index(fields=["id"], condition=models.Q(policy_status__isnull=True), name="service_pending_idx"),
            # Review queue (violations, then unreviewed; riskiest, then oldest
            # first) and the ports view filtered by policy status. Both end in
            # the id the keyset pages break ties with: a file import stamps
            # all its ports with one first_seen, and without the id a page
            # sorted thousands of tied rows (inventory.paging).
            models.Index(
                models.F("policy_status"),
                models.F("risk").desc(),
                models.F("first_seen"),
                models.F("id"),
                condition=models.Q(state=PortState.OPEN),
                name="service_queue_id_idx",
            ),
            # Ports view sorted by risk.
            models.Index(
                models.F("risk").desc(),
                models.F("first_seen"),
                models.F("id"),
                condition=models.Q(state=PortState.OPEN),
                name="service_risk_id_idx",
            ),
        ]
        ordering = ["host", "protocol", "port"]

    def __str__(self):
        return f"{self.host.address} {self.port}/{self.protocol}"

    def get_absolute_url(self):
        return PORT_URL(self.host.public_id, self.protocol, self.port)

    @property
    def risk_label(self) -> str:
        return risk_label(self.risk)

    @property
    def is_open(self) -> bool:
        return self.state == PortState.OPEN

    @property
    def violating(self) -> bool:
        return self.state == PortState.OPEN and self.policy_status == PolicyStatus.REJECTED

    @property
    def label(self) -> str:
        return " ".join(part for part in (self.product, self.version) if part)

    @property
    def seen_at(self):
        """When this port was last seen in its state.

        An open or filtered port within what the host's last answering scan
        probed was seen then (``host.last_seen``); otherwise ``last_seen``
        holds the time, written when the port changed or left the coverage.
        """
        host = self.host
        if (
            self.state != PortState.CLOSED
            and host.seen_ports_id is not None
            and host.seen_ports.covers(self.protocol, self.port)
        ):
            return max(self.last_seen, host.last_seen)
        return self.last_seen


class AuditEntry(models.Model):
    """One decision or configuration change: who, when, what, before and after.

    Append-only and hash-chained: each entry's hash covers its content and the
    previous entry's hash, so ``manage.py verify_audit`` finds any entry that
    was altered, removed or inserted. Written only through ``inventory.audit``.
    """

    seq = models.PositiveBigIntegerField(unique=True)
    at = models.DateTimeField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # The name at the time: a renamed or deleted user does not rewrite history.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=255, blank=True)
    summary = models.TextField(blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-seq"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["action", "-seq"], name="audit_action_idx"),
            models.Index(fields=["actor_name", "-seq"], name="audit_actor_idx"),
        ]

    def __str__(self):
        return f"#{self.seq} {self.action} by {self.actor_name}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditLogError("Audit entries are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditLogError("Audit entries are never deleted.")


class AuditHead(models.Model):
    """The chain's last entry (one row): appends lock it, so they are serial,
    and ``verify_audit`` finds an entry cut off the end of the chain."""

    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self):
        return f"audit head #{self.seq} {self.hash}"


class AuditLogError(Exception):
    pass


class RiskRule(models.Model):
    """A kind of port that is risky to expose: matched by port, or by the
    service name nmap identified (a database moved to another port is still one).

    Built-in rules come with PortWatch; admins edit their severity and add more.
    """

    protocol = models.CharField(max_length=4, choices=Protocol.choices, default=Protocol.TCP)
    port = models.PositiveIntegerField(null=True, blank=True, help_text="Leave empty to match by service name only.")
    service_name = models.CharField(
        max_length=64, blank=True, help_text="nmap's service name, e.g. redis; matches on any port."
    )
    label = models.CharField(max_length=80, help_text="What it is, e.g. Redis.")
    category = models.CharField(max_length=16, choices=RiskCategory.choices)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    builtin = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["-severity", "port", "service_name"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(port__isnull=True, service_name=""), name="riskrule_port_or_service"
            ),
            models.CheckConstraint(
                condition=models.Q(port__isnull=True) | models.Q(port__gte=PORT_MIN, port__lte=PORT_MAX),
                name="riskrule_port_in_range",
            ),
            models.UniqueConstraint(
                fields=["protocol", "port"],
                condition=models.Q(port__isnull=False),
                name="riskrule_unique_port",
                violation_error_message="A risk rule for this port and protocol already exists: edit that one.",
            ),
        ]

    def __str__(self):
        where = f"{self.port}/{self.protocol}" if self.port else f"service {self.service_name}"
        return f"{self.label} ({where}): {self.get_severity_display()}"


class Tag(models.Model):
    """A label for hosts (``web``, ``pci``...): rules, filters and alerts select by it."""

    name = models.SlugField(max_length=63, unique=True)
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class HostTag(models.Model):
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="+")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="+")
    # The assignment rule that added it; None when a person did (removing the
    # rule takes its tags away, never a person's).
    rule = models.ForeignKey("AssignmentRule", null=True, blank=True, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host", "tag"], name="hosttag_unique_host_tag")]
        indexes = [models.Index(fields=["tag", "host"], name="hosttag_tag_host_idx")]

    def __str__(self):
        return f"{self.host_id}:{self.tag_id}"


class AssignmentRule(models.Model):
    """Hosts within a network get tags and an owner (``10.1.0.0/16`` -> ``pci``, ``payments-team``).

    Applied to the hosts already known when saved and to every host a scan
    discovers later (``inventory.assignment``).
    """

    cidr = models.CharField(max_length=64, verbose_name="Network (CIDR)")
    zone = models.ForeignKey(
        Zone, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text="Empty: every zone."
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="assignment_rules")
    owner = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cidr", "pk"]

    def __str__(self):
        return f"{self.cidr} in {self.zone}" if self.zone_id else self.cidr


class ScopedRule:
    """What rules scoped like port rules share (``PortRule``, ``reach.SegmentationRule``):
    scope, zone, tag, cidr, host, protocol, port_start, port_end and expires_at."""

    def clean(self):
        if self.scope == RuleScope.CIDR:
            try:
                self.cidr = str(ipaddress.ip_network(self.cidr.strip(), strict=False))
            except ValueError:
                raise ValidationError({"cidr": f"{self.cidr[:60]!r} is not a network such as 10.1.0.0/16."}) from None
        if self.port_start is not None and self.port_end is not None and self.port_start > self.port_end:
            raise ValidationError({"port_end": "The last port comes before the first."})

    @property
    def ports_label(self) -> str:
        ports = str(self.port_start) if self.port_start == self.port_end else f"{self.port_start}-{self.port_end}"
        return f"{ports}/{self.protocol}"

    @property
    def scope_label(self) -> str:
        if self.scope == RuleScope.ZONE:
            return f"zone {self.zone}"
        if self.scope == RuleScope.TAG:
            return f"tag {self.tag}"
        if self.scope == RuleScope.CIDR:
            return f"network {self.cidr}"
        if self.scope == RuleScope.HOST:
            return f"host {self.host} ({self.host.zone})"
        return "everywhere"

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


def scoped_rule_constraints(prefix: str) -> list[models.CheckConstraint]:
    """The checks every scoped rule's table holds: a port range within 1-65535, and
    exactly the scope field its scope names (``<prefix>_port_range``, ``<prefix>_scope_fields``)."""
    return [
        models.CheckConstraint(
            condition=models.Q(port_start__gte=PORT_MIN, port_end__lte=PORT_MAX, port_start__lte=models.F("port_end")),
            name=f"{prefix}_port_range",
        ),
        models.CheckConstraint(
            condition=(
                models.Q(scope=RuleScope.GLOBAL, zone__isnull=True, tag__isnull=True, host__isnull=True, cidr="")
                | models.Q(scope=RuleScope.ZONE, zone__isnull=False, tag__isnull=True, host__isnull=True, cidr="")
                | models.Q(scope=RuleScope.TAG, zone__isnull=True, tag__isnull=False, host__isnull=True, cidr="")
                | (
                    models.Q(scope=RuleScope.CIDR, zone__isnull=True, tag__isnull=True, host__isnull=True)
                    & ~models.Q(cidr="")
                )
                | models.Q(scope=RuleScope.HOST, zone__isnull=True, tag__isnull=True, host__isnull=False, cidr="")
            ),
            name=f"{prefix}_scope_fields",
        ),
    ]


class PortRule(ScopedRule, models.Model):
    """A decision about a port, or range of ports, within a scope.

    Of the rules that match an open port, the most specific wins (see
    ``specificity``): a single host beats a network, a longer prefix a
    shorter one, a network a tag, a tag a zone, a zone everywhere; then a
    narrower port range; then rejection over approval.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    scope = models.CharField(max_length=8, choices=RuleScope.choices)
    zone = models.ForeignKey(Zone, null=True, blank=True, on_delete=models.PROTECT, related_name="port_rules")
    tag = models.ForeignKey(Tag, null=True, blank=True, on_delete=models.PROTECT, related_name="port_rules")
    cidr = models.CharField(max_length=64, blank=True, verbose_name="Network (CIDR)")
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.CASCADE, related_name="port_rules")
    protocol = models.CharField(max_length=4, choices=RULE_PROTOCOL_CHOICES, default=Protocol.TCP)
    port_start = models.PositiveIntegerField()
    port_end = models.PositiveIntegerField()
    decision = models.CharField(max_length=8, choices=Decision.choices)
    # Where its ports may listen, as the hosts' own reports say (listeners): "loopback" and networks.
    listen_on = models.CharField(
        max_length=300,
        blank=True,
        default="",
        db_default="",  # rules written in SQL (a seed, a restore) need not name it
        verbose_name="May listen on",
        help_text="Where the host may listen on these ports, by its own report: loopback and/or networks, "
        "e.g. “loopback, 10.1.0.0/16”. A listener elsewhere (all interfaces included) breaks the rule. "
        "Empty: anywhere.",
    )
    justification = models.TextField()
    owner = models.CharField(max_length=150, blank=True, help_text="Who answers for this port.")
    ticket = models.URLField(max_length=500, blank=True, help_text="Link to the ticket or change request.")
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: never. An expired approval makes its ports unreviewed again."
    )
    # Derived on save (see specificity_of): sorting by it picks the winner.
    specificity = models.BigIntegerField(editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-specificity", "port_start", "pk"]
        constraints = [
            *scoped_rule_constraints("portrule"),
        ]
        indexes = [
            # Which rules can match a port: the policy looks them up by port.
            models.Index(fields=["port_start", "port_end"], name="portrule_ports_idx"),
            models.Index(
                fields=["expires_at"], condition=models.Q(expires_at__isnull=False), name="portrule_expiry_idx"
            ),
        ]

    def __str__(self):
        return f"{display(self, 'decision')} {self.ports_label} on {self.scope_label}"

    def save(self, *args, **kwargs):
        self.specificity = specificity_of(self)
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return RULE_URL(self.public_id)


def specificity_of(rule: ScopedRule) -> int:
    """Scope rank, then prefix length (networks), then port-range narrowness,
    packed into one integer so that the database can order rules by it."""
    prefix = 0
    if rule.scope == RuleScope.CIDR and rule.cidr:
        network = ipaddress.ip_network(rule.cidr, strict=False)
        # An IPv4 /24 and an IPv6 /120 are equally narrow.
        prefix = network.prefixlen + (96 if network.version == 4 else 0)
    narrowness = PORT_MAX - (rule.port_end - rule.port_start)
    return (SCOPE_RANK[RuleScope(rule.scope)] << 24) | (prefix << 16) | narrowness


class InventorySnapshot(models.Model):
    """The overview's headline counts at one moment: the history behind its
    chart. Beat takes one every SNAPSHOT_MINUTES (inventory.tasks); the chart
    adds the live counts as its last point, so it never lags a review."""

    taken_at = models.DateTimeField(default=timezone.now, db_index=True)
    hosts = models.PositiveIntegerField()
    unreachable = models.PositiveIntegerField()
    open_ports = models.PositiveIntegerField()
    unreviewed = models.PositiveIntegerField()
    violating = models.PositiveIntegerField()

    class Meta:
        ordering = ["taken_at"]
        get_latest_by = "taken_at"

    def __str__(self):
        return f"snapshot at {self.taken_at:%Y-%m-%d %H:%M}"
