"""Scan targets, profiles, runs, chunks and the changes they produce."""

import ipaddress
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from inventory.choices import Protocol
from inventory.models import Host, Zone
from portwatch.links import Link
from scans.choices import (
    TERMINAL_CHUNK_STATUSES,
    TERMINAL_RUN_STATUSES,
    AttemptOutcome,
    ChangeKind,
    ChunkStatus,
    ChunkStep,
    PortScope,
    ProfileKind,
    RunStatus,
    Scanner,
    ScanType,
    ScheduleKind,
    ScopeAction,
    Timing,
    Trigger,
)
from scans.constants import MASSCAN_DEFAULT_RATE
from scans.schedules import Schedule
from scans.scope import Rule

# Links every list row makes (portwatch.links: reverse() without its per-call set-up).
RUN_URL = Link("run-detail")


class ScanProfile(models.Model):
    """A vetted set of nmap options. Users pick a profile; they never type
    nmap arguments. The argument list is built from these fields by
    ``scans.profiles.nmap_options``."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=255, blank=True)
    # Shipped with PortWatch; admins may not edit or delete it.
    builtin = models.BooleanField(default=False)
    # Fast discovery: masscan sweeps first (at masscan_rate, never above
    # MASSCAN_MAX_RATE), nmap then probes only what it found, with the fields below.
    kind = models.CharField(max_length=16, choices=ProfileKind.choices, default=ProfileKind.NMAP)
    masscan_rate = models.PositiveIntegerField(
        default=MASSCAN_DEFAULT_RATE, help_text="Packets per second masscan sends (fast discovery)."
    )
    # Sweep every port only of the addresses that answer a ping or a SYN to
    # 80/443 (like nmap's host discovery); off, every address on every port.
    discover_hosts = models.BooleanField(default=True)
    scan_type = models.CharField(max_length=16, choices=ScanType.choices, default=ScanType.TCP)
    port_scope = models.CharField(max_length=8, choices=PortScope.choices, default=PortScope.TOP)
    top_ports = models.PositiveIntegerField(default=1000)
    version_detection = models.BooleanField(default=False)
    timing = models.CharField(max_length=2, choices=Timing.choices, default=Timing.AGGRESSIVE)
    max_retries = models.PositiveSmallIntegerField(default=2)
    resolve_names = models.BooleanField(default=False)
    # Names from NSE_SCRIPT_ALLOWLIST only.
    scripts = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def is_fast_discovery(self) -> bool:
        return self.kind == ProfileKind.FAST_DISCOVERY


class ScopeRule(models.Model):
    """A network PortWatch may scan (allow) or must never touch (exclude).

    Exclusions win over allows. Locked rules (link-local and cloud-metadata
    exclusions) cannot be deleted from the UI.
    """

    network = models.CharField(max_length=64, unique=True)
    action = models.CharField(max_length=8, choices=ScopeAction.choices)
    reason = models.CharField(max_length=200)
    locked = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["action", "network"]

    def __str__(self):
        return f"{self.action} {self.network}"

    def as_rule(self) -> Rule:
        return Rule(ipaddress.ip_network(self.network), self.action, self.reason)


class ScanTarget(models.Model):
    """What to scan (addresses, networks, hostnames), which ports, how and when."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, unique=True)
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, related_name="targets")
    # Normalised by scans.targets.parse_targets: one item per line.
    targets = models.TextField()
    # Normalised by inventory.ports.PortSet; empty means the profile's default ports.
    ports = models.TextField(blank=True)
    profile = models.ForeignKey(ScanProfile, on_delete=models.PROTECT, related_name="targets")
    # Where it is scanned from: each run of the target is one run per vantage
    # point (none chosen: the zone's home vantage point, as before they existed).
    vantage_points = models.ManyToManyField(
        "reach.VantagePoint",
        blank=True,
        related_name="targets",
        help_text="Scan from these locations (one run each). None: the zone's home vantage point.",
    )
    enabled = models.BooleanField(default=True)
    schedule_kind = models.CharField(max_length=16, choices=ScheduleKind.choices, default=ScheduleKind.MANUAL)
    # Minutes between runs (interval schedules).
    schedule_interval = models.PositiveIntegerField(null=True, blank=True)
    # Five-field cron expression, read in schedule_timezone (cron schedules).
    schedule_cron = models.CharField(max_length=100, blank=True)
    schedule_timezone = models.CharField(max_length=64, default="UTC")
    next_run_at = models.DateTimeField(null=True, blank=True)
    # The last slot that was skipped because the previous run was still going.
    last_skipped_slot = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            # The scheduler's tick: enabled targets whose next run is due.
            models.Index(fields=["next_run_at"], name="target_next_run_idx", condition=Q(enabled=True)),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("target-detail", args=[self.public_id])

    @property
    def target_items(self) -> list[str]:
        return [line for line in self.targets.splitlines() if line]

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.schedule_kind, self.schedule_interval, self.schedule_cron, self.schedule_timezone)

    @property
    def schedule_display(self) -> str:
        if self.schedule_kind == ScheduleKind.INTERVAL:
            return f"every {self.schedule_interval} min"
        if self.schedule_kind == ScheduleKind.CRON:
            return f"cron {self.schedule_cron} ({self.schedule_timezone})"
        return "manual"


class ScanRun(models.Model):
    """One execution of a target (or an import): a job with explicit states.

    Its work is split into chunks; the run is finalized when every chunk is
    terminal, by whichever chunk finishes last (``scans.services.finalize_run``).
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    target = models.ForeignKey(ScanTarget, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, related_name="runs")
    # Where it was scanned from; filled with the zone's home on save (see save()).
    vantage = models.ForeignKey(
        "reach.VantagePoint", null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    profile = models.ForeignKey(ScanProfile, null=True, blank=True, on_delete=models.PROTECT, related_name="runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    # masscan imports conclude only what masscan heard (see scans.ingest.imports).
    scanner = models.CharField(max_length=16, choices=Scanner.choices, default=Scanner.NMAP)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # What was asked for, frozen at creation so later edits of the target or
    # profile do not rewrite history.
    targets = models.TextField()
    ports = models.TextField(blank=True)
    nmap_options = models.JSONField(default=list)
    # Fast discovery: masscan's frozen options, {"discovery": [...] or [], "sweep": [...]}
    # (targets, exclusions and output are added by scans.masscan_runner); empty otherwise.
    # nmap_options are then the confirm step's, without its ports (each confirm chunk has its own).
    masscan_options = models.JSONField(default=dict, blank=True)
    # The slot of the schedule this run fills; unique per target so that a
    # slot can never produce two runs, whatever the number of beat processes.
    schedule_slot = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    hosts_total = models.PositiveIntegerField(default=0)
    hosts_done = models.PositiveIntegerField(default=0)
    hosts_up = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["target", "vantage", "schedule_slot"],
                condition=Q(schedule_slot__isnull=False),
                name="run_unique_target_vantage_slot",
            ),
        ]
        indexes = [
            # Runs page and overview: newest first.
            models.Index(fields=["-created_at"], name="run_created_idx"),
            # /metrics: runs queued or running (a few, among every run ever),
            # runs finished in the last 24 hours, each target's latest run.
            models.Index(
                fields=["status"],
                condition=Q(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]),
                name="run_active_idx",
            ),
            models.Index(fields=["finished_at"], name="run_finished_idx"),
            models.Index(fields=["target", "-finished_at"], name="run_target_finished_idx"),
        ]

    def __str__(self):
        return f"run {self.public_id} ({self.status})"

    def save(self, *args, **kwargs):
        # Every run carries its vantage point; the zone's home unless another was chosen.
        if self.vantage_id is None and self.zone_id is not None:
            from reach.models import VantagePoint  # noqa: PLC0415 - reach's models import this app's

            self.vantage = VantagePoint.home(self.zone)
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return RUN_URL(self.public_id)

    @property
    def is_fast_discovery(self) -> bool:
        return bool(self.masscan_options)

    @property
    def queue(self) -> str:
        """The broker queue of its chunks: its vantage point's."""
        return self.vantage.queue

    @property
    def from_home(self) -> bool:
        """Scanned from its zone's home vantage point: its result is the inventory's state."""
        return self.vantage is None or self.vantage.home_of_id == self.zone_id

    @property
    def is_import(self) -> bool:
        """An imported file: its targets and ports are what the file says nmap scanned."""
        return self.trigger == Trigger.IMPORT

    @property
    def is_masscan(self) -> bool:
        return self.scanner == Scanner.MASSCAN

    @property
    def succeeded(self) -> bool:
        return self.status == RunStatus.SUCCEEDED

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES

    @property
    def progress_percent(self) -> int:
        if not self.hosts_total:
            return 100 if self.is_terminal else 0
        return min(100, round(100 * self.hosts_done / self.hosts_total))

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def duration_seconds(self) -> float | None:
        duration = self.duration
        return duration.total_seconds() if duration is not None else None


class ScanChunk(models.Model):
    """A slice of a run's addresses: one nmap process, one Celery task.

    Its state lives here rather than in the broker, so a lost message or a
    killed worker is found and retried from the database, and ``ingested_at``
    makes a second delivery of the same chunk a no-op.
    """

    run = models.ForeignKey(ScanRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    step = models.CharField(max_length=8, choices=ChunkStep.choices, default=ChunkStep.SCAN)
    # A confirm chunk's ports (a PortSet's text): what its sweep found open on its hosts.
    ports = models.TextField(blank=True)
    # A sweep chunk's result, kept for the run page: {"addresses", "answered", "hosts", "ports"}
    # (addresses swept, how many answered host discovery, hosts and host:ports found open).
    found = models.JSONField(default=dict, blank=True)
    # Target items (addresses, networks, ranges, hostnames) given to nmap.
    targets = models.JSONField(default=list)
    # Addresses the chunk covers once hostnames are resolved.
    addresses = models.JSONField(default=list)
    # Addresses planned (a hostname counts once until resolved): progress.
    size = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=ChunkStatus.choices, default=ChunkStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Who runs the current attempt, and when it last said it was alive: a
    # redelivered task takes over only from an attempt that is dead.
    worker = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # What nmap really probed (protocol -> port ranges), read from its output.
    coverage = models.JSONField(default=dict, blank=True)
    hosts_up = models.PositiveIntegerField(default=0)
    # Changes that would alert, re-probed before they were recorded:
    # {"candidates": n, "confirmed": n, "refuted": n}.
    confirmation = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    # When its task was handed to the broker (NULL: not yet, or the broker
    # refused it): the sweep sends again what was never sent.
    sent_at = models.DateTimeField(null=True, blank=True)
    # A remote vantage point's chunk: the id of the order last sent for it. Only
    # a result answering that order is accepted, once (scans.remote).
    order_id = models.CharField(max_length=32, blank=True, editable=False)
    # After a transient failure the chunk waits in the queue until then (back-off).
    retry_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="chunk_unique_run_index"),
        ]
        indexes = [
            # The sweeper: chunks that are not terminal, oldest first.
            models.Index(
                fields=["queued_at"],
                name="chunk_pending_idx",
                condition=Q(status__in=[ChunkStatus.QUEUED, ChunkStatus.RUNNING]),
            ),
        ]

    def __str__(self):
        return f"chunk {self.index} of {self.run_id}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_CHUNK_STATUSES

    @property
    def waiting_to_retry(self) -> bool:
        return self.status == ChunkStatus.QUEUED and self.retry_at is not None


class ChunkAttempt(models.Model):
    """One try at a chunk: who ran it, how it ended and, if it failed, why.

    A chunk is tried again after a transient failure or a lost worker (up to
    SCAN_CHUNK_MAX_ATTEMPTS tries); every try is kept, so the run page shows
    each error and not only the last one.
    """

    chunk = models.ForeignKey(ScanChunk, on_delete=models.CASCADE, related_name="tries")
    number = models.PositiveSmallIntegerField()
    worker = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices, default=AttemptOutcome.RUNNING)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["chunk", "number"]
        constraints = [
            models.UniqueConstraint(fields=["chunk", "number"], name="attempt_unique_chunk_number"),
        ]

    def __str__(self):
        return f"attempt {self.number} of chunk {self.chunk_id}: {self.outcome}"


class Change(models.Model):
    """Something a scan saw differ from the inventory, recorded once.

    Host-level kinds (discovered, unreachable, returned) have no protocol or
    port; the two partial constraints make each change unique per run, host,
    (protocol, port) and kind, so a redelivered chunk cannot record it twice.

    A change that follows from a rule rather than a scan (a segmentation
    rule created, edited, deleted or expired; a host's tags or zone changed:
    ``reach.segmentation``) has no run and no chunk.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # No separate indexes on run and host: the unique constraints and the
    # (host, ...) indexes below start with them, and every index costs the
    # bulk insert of a large scan's changes.
    run = models.ForeignKey(
        ScanRun, null=True, blank=True, on_delete=models.CASCADE, related_name="changes", db_index=False
    )
    chunk = models.ForeignKey(ScanChunk, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes")
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="changes", db_index=False)
    # Where it was seen from (its run's vantage point).
    vantage = models.ForeignKey(
        "reach.VantagePoint", null=True, blank=True, on_delete=models.PROTECT, related_name="changes", db_index=False
    )
    kind = models.CharField(max_length=24, choices=ChangeKind.choices)
    protocol = models.CharField(max_length=4, choices=Protocol.choices, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    # The port was flapping when this change was seen (see Service.flapping).
    flapping = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "host", "protocol", "port", "kind"],
                condition=Q(port__isnull=False),
                name="change_unique_port_change_per_run",
            ),
            models.UniqueConstraint(
                fields=["run", "host", "kind"],
                condition=Q(port__isnull=True),
                name="change_unique_host_change_per_run",
            ),
        ]
        indexes = [
            # Changes feed and overview: newest first. With the id, as they are
            # ordered: a scan stamps all its changes with one instant (a file
            # import, hundreds of thousands), and the latest 15 must not read them all.
            models.Index(fields=["-created_at", "-id"], name="change_created_idx"),
            # Port history, counting a port's recent toggles (flapping), and the
            # host timeline (a host's changes are few: they are sorted after).
            models.Index(fields=["host", "protocol", "port", "-created_at"], name="change_port_created_idx"),
        ]

    def __str__(self):
        where = f" {self.port}/{self.protocol}" if self.port else ""
        return f"{self.get_kind_display()} {self.host_id}{where}"


class WorkerHeartbeat(models.Model):
    """A running Celery worker, as it last reported itself (scans.worker.Heartbeat).

    Celery's own ping is a broadcast, which the embedded filesystem broker
    cannot carry; a row every few seconds works on every broker, and the
    health check reads it."""

    name = models.CharField(max_length=255, unique=True)
    queues = models.JSONField(default=list)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class StagedPort(models.Model):
    """A port the SQL diff engine is about to write: a row of its temporary table ``pw_upd``.

    Not a table of its own (``managed = False``): the model exists so that
    the policy's own expressions (``inventory.policy.decision``) decide the
    rule, status and risk of new and renamed ports before they are written,
    instead of writing them and then rewriting them. See ``scans.ingest.postgres``.
    """

    host_id = models.BigIntegerField(primary_key=True)  # a key Django needs, not unique here
    protocol = models.CharField(max_length=8)
    port = models.IntegerField()
    name = models.CharField(max_length=64, db_column="new_name")
    decide = models.BooleanField()
    service_id = models.BigIntegerField(null=True)  # the port's row, if it has one already
    kind = models.CharField(max_length=32, null=True)  # noqa: DJ001 - the change it makes, if any
    policy_rule = models.ForeignKey(
        "inventory.PortRule", null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    policy_status = models.CharField(max_length=16, null=True)  # noqa: DJ001 - a column of pw_upd
    risk = models.SmallIntegerField(null=True)

    class Meta:
        managed = False
        db_table = "pw_upd"

    def __str__(self):
        return f"{self.port}/{self.protocol} of host {self.host_id}"
