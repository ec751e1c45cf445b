"""Vantage points and what each of them sees (DESIGN.md, "Views of a port").

A vantage point is a named scanner location: the workers started for it
consume its queue, so its scans run from inside that network segment. Every
zone has a home vantage point (its workers before vantage points existed,
same queue): the inventory itself (``Host.status``, ``Service.state``) is
what a zone's home vantage point sees. Any other vantage point's scans write
only its own view, ``HostView`` and ``PortView``, with the same coverage
rules (``scans.ingest.diff`` is their specification too): nothing is
concluded about one vantage point's view from another's scan.
"""

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from inventory.choices import RULE_PROTOCOL_CHOICES, HostStatus, PortState, Protocol, RuleScope
from inventory.models import Host, ScopedRule, Tag, Zone, scoped_rule_constraints, specificity_of
from portwatch.links import Link
from reach.segmentation_choices import SegmentationMode

# Queues of vantage points other than a zone's home ("scan.<zone>" stays the home's).
VANTAGE_QUEUE_PREFIX = "scan-from."


# Links every list row makes (portwatch.links: reverse() without its per-call set-up).
VANTAGE_URL = Link("vantage-detail")


class VantagePoint(models.Model):
    name = models.SlugField(max_length=63, unique=True)
    description = models.CharField(max_length=255, blank=True)
    # The zone whose home this is: its view is the inventory's, its queue the zone's.
    home_of = models.OneToOneField(
        Zone, null=True, blank=True, on_delete=models.CASCADE, related_name="home_vantage", editable=False
    )
    # Its scanners hold no database credentials (``manage.py run_scanner``): its
    # chunks go out as orders signed with ``key`` and come back as signed results
    # (scans.orders), ingested by the central workers.
    remote = models.BooleanField(
        default=False,
        help_text="Its scanners run without database access (manage.py run_scanner) and sign with its key.",
    )
    key = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.remote and not self.key:
            self.key = new_key()
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return VANTAGE_URL(self.name)

    @property
    def is_home(self) -> bool:
        return self.home_of_id is not None

    @property
    def queue(self) -> str:
        """The broker queue its workers consume: a zone's home's is the zone's, as before vantage points.

        A remote vantage point's scanners know only its name, so its queue is
        named after it, home or not.
        """
        if self.home_of_id is not None and not self.remote:
            from scans.queueing import queue_for_zone  # noqa: PLC0415 - scans imports this module

            return queue_for_zone(self.home_of)
        return f"{VANTAGE_QUEUE_PREFIX}{self.name}"

    @classmethod
    def home(cls, zone: Zone) -> "VantagePoint":
        """The zone's home vantage point (made on first use for a zone older than them)."""
        try:
            return zone.home_vantage
        except cls.DoesNotExist:
            return ensure_home(zone)


def new_key() -> str:
    """A vantage point's signing key: 256 random bits."""
    return secrets.token_hex(32)


def ensure_home(zone: Zone) -> VantagePoint:
    """Give ``zone`` its home vantage point, named after it (or after it with a suffix, if taken)."""
    existing = VantagePoint.objects.filter(home_of=zone).first()
    if existing is not None:
        return existing
    candidates = [zone.name, f"{zone.name}-home", *(f"{zone.name}-home-{n}" for n in range(2, 100))]
    taken = set(VantagePoint.objects.filter(name__in=candidates).values_list("name", flat=True))
    name = next(candidate[:63] for candidate in candidates if candidate not in taken)
    return VantagePoint.objects.create(name=name, home_of=zone, description=f"Home of zone {zone.name}")


class HostView(models.Model):
    """Whether a host answers a vantage point (other than its zone's home), and when it last did."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="views")
    vantage = models.ForeignKey(VantagePoint, on_delete=models.CASCADE, related_name="host_views")
    status = models.CharField(max_length=16, choices=HostStatus.choices)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(null=True, blank=True)
    last_scanned = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["vantage", "host"], name="hostview_unique_vantage_host")]
        indexes = [
            # A vantage point's page: the hosts unreachable from there, by host (keyset pages).
            models.Index(fields=["vantage", "status", "host"], name="hostview_vantage_status_idx"),
        ]

    def __str__(self):
        return f"{self.host_id} from {self.vantage_id}: {self.status}"


class PortView(models.Model):
    """One port as one vantage point (other than its zone's home) sees it.

    Like a Service row: kept once seen open, so "open from here" and "no
    longer open from here" are both facts; ``stale`` when the host stopped
    answering this vantage point (its state is the last one seen).
    """

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="port_views")
    vantage = models.ForeignKey(VantagePoint, on_delete=models.CASCADE, related_name="port_views")
    protocol = models.CharField(max_length=4, choices=Protocol.choices)
    port = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=PortState.choices)
    name = models.CharField(max_length=64, blank=True)
    stale = models.BooleanField(default=False)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    last_changed = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["host", "protocol", "port", "vantage"], name="portview_unique_port_vantage")
        ]
        indexes = [
            # The exposure matrix and a vantage point's page: its open ports.
            models.Index(fields=["vantage", "state", "host"], name="portview_vantage_state_idx"),
            # A vantage point's page filtered by port ("who has 6379 open from office-lan").
            models.Index(fields=["vantage", "state", "port", "host"], name="portview_vantage_port_idx"),
        ]

    def __str__(self):
        return f"{self.port}/{self.protocol} of {self.host_id} from {self.vantage_id}: {self.state}"


class SegmentationRule(ScopedRule, models.Model):
    """From where the ports of a scope may be reached (DESIGN.md, "Views of a port").

    Scoped like a port rule (global, zone, tag, network, host; a protocol and
    a port range). ``mode`` says what the listed vantage points are:
    ``deny``, must not reach them; ``only``, nothing else may; ``allow``,
    may, whatever a broader rule says (an exception to one).

    Held per vantage point (``reach.segmentation``): a deny or allow rule
    speaks about the vantage points it lists, an only rule about every one.
    Of the unexpired rules that match an exposure's host, protocol and port
    and speak about its vantage point, the most specific wins, in port rules'
    order (``specificity_of``: host > network, longer prefix first > tag >
    zone > everywhere, then the narrower port range); on a tie the rule that
    forbids wins (the safe answer, as rejection does among port rules), then
    the newest.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    scope = models.CharField(max_length=8, choices=RuleScope.choices)
    zone = models.ForeignKey(Zone, null=True, blank=True, on_delete=models.PROTECT, related_name="segmentation_rules")
    tag = models.ForeignKey(Tag, null=True, blank=True, on_delete=models.PROTECT, related_name="segmentation_rules")
    cidr = models.CharField(max_length=64, blank=True, verbose_name="Network (CIDR)")
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.CASCADE, related_name="segmentation_rules")
    protocol = models.CharField(max_length=4, choices=RULE_PROTOCOL_CHOICES, default=Protocol.TCP)
    port_start = models.PositiveIntegerField()
    port_end = models.PositiveIntegerField()
    mode = models.CharField(max_length=8, choices=SegmentationMode.choices)
    vantage_points = models.ManyToManyField(
        VantagePoint, through="SegmentationRuleVantage", related_name="segmentation_rules"
    )
    justification = models.TextField()
    owner = models.CharField(max_length=150, blank=True, help_text="Who answers for this rule.")
    ticket = models.URLField(max_length=500, blank=True, help_text="Link to the ticket or change request.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never. An expired rule governs nothing.")
    # Set once its expiry has been applied (reach.segmentation.expire), or
    # when it was saved already expired; cleared when it is saved unexpired.
    lapsed = models.BooleanField(default=False, editable=False)
    # Removed by someone: it governs nothing from then on (its expiry is set
    # to the moment of removal) and is deleted once that expiry is applied
    # (reach.segmentation.expire); hidden from the pages and the API meanwhile.
    removing = models.BooleanField(default=False, editable=False)
    # Derived on save (inventory.models.specificity_of): sorting by it picks the winner.
    specificity = models.BigIntegerField(editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-specificity", "port_start", "pk"]
        constraints = [
            *scoped_rule_constraints("segrule"),
        ]
        indexes = [
            # Which rules can match a port: the evaluation looks them up by port.
            models.Index(fields=["port_start", "port_end"], name="segrule_ports_idx"),
            # Rules whose expiry is still to be applied (the periodic task).
            models.Index(
                fields=["expires_at"],
                condition=models.Q(expires_at__isnull=False, lapsed=False),
                name="segrule_expiry_idx",
            ),
        ]

    def __str__(self):
        names = ", ".join(self.vantage_names) or "nowhere"
        return f"{self.ports_label} on {self.scope_label} {self.get_mode_display()} {names}"

    def save(self, *args, **kwargs):
        self.specificity = specificity_of(self)
        # Saved already expired: the save's own evaluation applies the expiry.
        self.lapsed = self.is_expired()
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("segmentation-rule-detail", args=[self.public_id])

    @property
    def vantage_names(self) -> list[str]:
        """Names of the listed vantage points (prefetch ``vantage_points`` for a list of rules)."""
        if self.pk is None:
            return []
        return sorted(vantage.name for vantage in self.vantage_points.all())


class RuleJudgement(models.Model):
    """A segmentation rule saved whose violations are still to be worked out.

    Written in the transaction that saves the rule, taken by a worker
    (``reach.segmentation_writes.judge_pending``) and deleted in the
    transaction that brings the violations in line: a worker killed halfway
    leaves it queued, and beat's periodic task takes it again.
    """

    rule = models.ForeignKey(SegmentationRule, on_delete=models.CASCADE, related_name="judgements")
    # What the rule governed before this save (``reach.segmentation_writes.reach_fields``); None: created.
    before = models.JSONField(null=True, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self):
        return f"judgement of rule {self.rule_id} queued {self.queued_at:%Y-%m-%d %H:%M:%S}"


class SegmentationRuleVantage(models.Model):
    """A vantage point a segmentation rule lists. A vantage point that rules
    name cannot be deleted: an ``only`` rule that lost one would forbid it."""

    rule = models.ForeignKey(SegmentationRule, on_delete=models.CASCADE, related_name="+")
    vantage = models.ForeignKey(VantagePoint, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            # Also the evaluation's lookup: does this rule list that vantage point?
            models.UniqueConstraint(fields=["rule", "vantage"], name="segrulevantage_unique_rule_vantage")
        ]

    def __str__(self):
        return f"{self.rule_id}:{self.vantage_id}"


class SegmentationViolation(models.Model):
    """An exposure a segmentation rule forbids: a vantage point reaches a
    host's port that the rule governing it from there says it must not.

    Kept by ``reach.segmentation``, exactly, whenever what a vantage point
    sees, a rule or a host's scope changes: one row per exposure (host,
    protocol, port, vantage point) while it lasts. Its start and end are
    changes (``segmentation_violated``, ``segmentation_kept``).
    """

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="segmentation_violations")
    protocol = models.CharField(max_length=4, choices=Protocol.choices)
    port = models.PositiveIntegerField()
    vantage = models.ForeignKey(VantagePoint, on_delete=models.CASCADE, related_name="segmentation_violations")
    # The rule that forbids it now. Its violations are re-evaluated before a rule is deleted.
    rule = models.ForeignKey(SegmentationRule, on_delete=models.RESTRICT, related_name="violations")
    # When it began. NULL only inside reach.segmentation.reconcile, for the
    # rows it is recording changes of (never seen outside its transaction).
    since = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["host", "protocol", "port", "vantage"], name="segviolation_unique_exposure"
            ),
        ]
        indexes = [
            # A rule's violations (its page, its count on the rules page), newest first.
            models.Index(fields=["rule", "-id"], name="segviolation_rule_idx"),
            # A vantage point's violations, newest first.
            models.Index(fields=["vantage", "-id"], name="segviolation_vantage_idx"),
            # The rows reconcile is recording (none between its calls).
            models.Index(fields=["id"], condition=models.Q(since__isnull=True), name="segviolation_pending_idx"),
        ]

    def __str__(self):
        return f"{self.port}/{self.protocol} of {self.host_id} from {self.vantage_id}"
