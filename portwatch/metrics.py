"""Prometheus metrics, read from the database and the broker at scrape time.

Nothing is counted in process memory: web, workers and beat are separate
processes (gunicorn runs several), so the database is the one place that
knows the totals. The inventory's figures are the counts its triggers keep
(``tallies``, as on the overview); the rest reads rows that are few whatever
the inventory's size (runs, chunks and notifications still in flight, the
last day's runs, each target's latest run) through indexes that hold them.
Unbounded all-time counts (every change ever) are left out on purpose, and
the recent window is given instead.
"""

from datetime import timedelta

from django.db.models import Count, F, OuterRef, Subquery
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from alerts.choices import NotificationStatus
from alerts.models import Channel, Notification
from inventory.choices import HostStatus
from portwatch import dashboard, health
from portwatch.celery import app
from scans.choices import TERMINAL_RUN_STATUSES, ChangeKind, ChunkStatus, RunStatus
from scans.models import ScanChunk, ScanRun, ScanTarget

# Notification states worth watching; "sent" grows without bound and is left out.
OPEN_NOTIFICATION_STATUSES = [NotificationStatus.PENDING, NotificationStatus.SENDING, NotificationStatus.FAILED]


def _gauge(name, documentation, labels=(), samples=()):
    family = GaugeMetricFamily(name, documentation, labels=list(labels) or None)
    for label_values, value in samples:
        family.add_metric(list(label_values), value)
    return family


def _count_by(queryset, field: str) -> dict:
    """{value of field: rows} in one GROUP BY."""
    return dict(queryset.values_list(field).annotate(n=Count("id")).values_list(field, "n"))


def _single(name, documentation, value):
    return GaugeMetricFamily(name, documentation, value=value)


def queue_depths(queues) -> dict[str, int] | None:
    """Messages waiting in each broker queue, or None when the broker cannot be reached."""
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=health.BROKER_TIMEOUT_SECONDS)
            channel = conn.default_channel
            depths = {}
            for queue in sorted(queues):
                try:
                    depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:  # a queue nobody declared yet holds nothing
                    depths[queue] = 0
                    channel = conn.channel()
            return depths
    except Exception:
        return None


class PortWatchCollector:
    def collect(self):
        now = timezone.now()
        yield from self.inventory(now)
        yield from self.scans(now)
        yield from self.queues()
        yield from self.alerts()

    def inventory(self, now):
        counts, freshness = dashboard.host_figures(now)
        yield _gauge(
            "portwatch_hosts",
            "Hosts in the inventory by status.",
            ["status"],
            [
                ((HostStatus.UNREACHABLE.value,), counts["unreachable"]),
                (("up",), counts["hosts"] - counts["unreachable"]),
            ],
        )
        yield _single("portwatch_ports_open", "Open ports in the inventory.", counts["open_ports"])
        yield _single(
            "portwatch_ports_unreviewed", "Open ports no rule or review has decided on.", counts["unreviewed"]
        )
        yield _single("portwatch_ports_violating", "Open ports a rule or review rejected.", counts["violating"])
        yield _single(
            "portwatch_hosts_overdue", "Hosts not scanned within twice their zone's schedule.", freshness.hosts_overdue
        )
        yield _single(
            "portwatch_scheduler_late_targets",
            "Scheduled targets whose next run is overdue (is beat running?).",
            len(freshness.late_targets),
        )
        by_kind = dashboard.changes_by_kind(now)
        yield _gauge(
            "portwatch_changes_last_24h",
            "Changes recorded in the last 24 hours, by kind.",
            ["kind"],
            [((kind,), by_kind.get(kind, 0)) for kind in ChangeKind.values],
        )

    def scans(self, now):
        active = _count_by(ScanRun.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]), "status")
        yield _gauge(
            "portwatch_scan_runs_active",
            "Scan runs queued or running.",
            ["status"],
            [((status,), active.get(status, 0)) for status in (RunStatus.QUEUED, RunStatus.RUNNING)],
        )
        recent = _count_by(ScanRun.objects.filter(finished_at__gte=now - timedelta(days=1)), "status")
        yield _gauge(
            "portwatch_scan_runs_finished_last_24h",
            "Scan runs that finished in the last 24 hours, by outcome.",
            ["status"],
            [((status,), recent.get(status, 0)) for status in sorted(TERMINAL_RUN_STATUSES)],
        )
        chunks = _count_by(ScanChunk.objects.filter(status__in=[ChunkStatus.QUEUED, ChunkStatus.RUNNING]), "status")
        yield _gauge(
            "portwatch_scan_chunks_active",
            "Scan chunks queued or running.",
            ["status"],
            [((status,), chunks.get(status, 0)) for status in (ChunkStatus.QUEUED, ChunkStatus.RUNNING)],
        )
        # Each target's latest finished run: how long it took, and when it ended
        # (one index lookup per target: run_target_finished_idx).
        latest = ScanRun.objects.filter(
            target_id=OuterRef("pk"), finished_at__isnull=False, started_at__isnull=False
        ).order_by("-finished_at")
        names = dict(
            ScanTarget.objects.annotate(latest=Subquery(latest.values("pk")[:1]))
            .filter(latest__isnull=False)
            .values_list("latest", "name")
        )
        runs = ScanRun.objects.filter(pk__in=names).annotate(took=F("finished_at") - F("started_at"))
        duration = _gauge("portwatch_scan_duration_seconds", "Duration of each target's latest run.", ["target"])
        ended = _gauge(
            "portwatch_scan_last_finished_timestamp_seconds", "When each target's latest run ended.", ["target"]
        )
        for run in runs:
            duration.add_metric([names[run.pk]], run.took.total_seconds())
            ended.add_metric([names[run.pk]], run.finished_at.timestamp())
        yield duration
        yield ended

    def queues(self):
        workers = health.live_workers()
        required = health.required_queues()
        consumers = dict.fromkeys(required, 0)
        for worker in workers:
            for queue in worker.queues:
                consumers[queue] = consumers.get(queue, 0) + 1
        yield _gauge(
            "portwatch_queue_workers",
            "Live workers consuming each queue (0 on a queue PortWatch needs means nothing runs it).",
            ["queue"],
            [((queue,), count) for queue, count in sorted(consumers.items())],
        )
        depths = queue_depths(consumers)
        yield _single("portwatch_broker_up", "1 if the broker answered this scrape.", 0 if depths is None else 1)
        yield _gauge(
            "portwatch_queue_depth",
            "Messages waiting in each broker queue.",
            ["queue"],
            [((queue,), depth) for queue, depth in sorted((depths or {}).items())],
        )

    def alerts(self):
        by_status = _count_by(Notification.objects.filter(status__in=OPEN_NOTIFICATION_STATUSES), "status")
        yield _gauge(
            "portwatch_notifications",
            "Notifications waiting, being sent, or failed (failed ones wait for an admin).",
            ["status"],
            [((status,), by_status.get(status, 0)) for status in OPEN_NOTIFICATION_STATUSES],
        )
        channels = list(Channel.objects.filter(enabled=True).values_list("name", "failure_count", "last_delivery_at"))
        yield _gauge(
            "portwatch_channel_consecutive_failures",
            "Delivery failures in a row on each enabled channel (0 once one succeeds).",
            ["channel"],
            [((name,), failures) for name, failures, _ in channels],
        )
        yield _gauge(
            "portwatch_channel_last_delivery_timestamp_seconds",
            "When each enabled channel last delivered.",
            ["channel"],
            [((name,), at.timestamp()) for name, _, at in channels if at is not None],
        )


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(PortWatchCollector())


def exposition() -> bytes:
    return generate_latest(REGISTRY)
