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

from django.db import models
from django.urls import reverse
from django.utils import timezone

from inventory.choices import HostStatus, PortState, Protocol
from inventory.models import Host, Zone

# Queues of vantage points other than a zone's home ("scan.<zone>" stays the home's).
VANTAGE_QUEUE_PREFIX = "scan-from."


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
        return reverse("vantage-detail", args=[self.name])

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
