"""The figures of the overview page (and of the metrics endpoint).

Everything here reads. Each figure is one aggregate query over an indexed
table, so the overview can poll them every few seconds on a large inventory.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Q
from django.db.models.functions import TruncHour

from inventory.choices import PolicyStatus, PortState
from inventory.models import Host, InventorySnapshot, Service
from inventory.snapshots import count_expressions
from scans.choices import ScheduleKind
from scans.models import Change, ScanTarget

# A host counts as overdue when its zone's most frequent schedule should have
# scanned it twice over: one missed slot is a busy worker, two is a problem.
OVERDUE_PERIODS = 2
# A scheduled target whose next slot is this far in the past was not picked up:
# beat (the scheduler) is not running, or cannot reach the database.
SCHEDULER_LATE = timedelta(minutes=2)
BACKLOG_AGES = [
    ("under 1 day", timedelta(0), timedelta(days=1)),
    ("1-7 days", timedelta(days=1), timedelta(days=7)),
    ("7-30 days", timedelta(days=7), timedelta(days=30)),
    ("over 30 days", timedelta(days=30), None),
]
CHART_RANGES = {"1": timedelta(days=1), "7": timedelta(days=7), "30": timedelta(days=30)}
# Ranges drawn from hourly highs rather than every snapshot (720 points, not 2,880).
CHART_HOURLY = {"30"}
CHART_DEFAULT_RANGE = "7"


def change_counts(now: datetime) -> dict:
    return Change.objects.filter(created_at__gte=now - timedelta(days=7)).aggregate(
        day=Count("id", filter=Q(created_at__gte=now - timedelta(days=1))),
        week=Count("id"),
    )


def review_backlog(now: datetime) -> list[dict]:
    """Open, unreviewed ports by how long they have waited (since first seen)."""
    buckets = {}
    for index, (_label, newer, older) in enumerate(BACKLOG_AGES):
        condition = Q(first_seen__lte=now - newer)
        if older is not None:
            condition &= Q(first_seen__gt=now - older)
        # Counting first_seen (never null), not id: the partial queue index holds it, so the scan is index-only.
        buckets[f"age{index}"] = Count("first_seen", filter=condition)
    counts = Service.objects.filter(state=PortState.OPEN, policy_status=PolicyStatus.UNREVIEWED).aggregate(
        oldest=Min("first_seen"), **buckets
    )
    return {
        "oldest": counts["oldest"],
        "buckets": [{"label": label, "count": counts[f"age{i}"]} for i, (label, _, _) in enumerate(BACKLOG_AGES)],
    }


def _period(target: ScanTarget, now: datetime) -> timedelta:
    schedule = target.schedule
    if schedule.kind == ScheduleKind.INTERVAL:
        return timedelta(minutes=schedule.interval)
    first = schedule.slot_after(now, now)
    return schedule.slot_after(first, first) - first


@dataclass
class Freshness:
    scheduled_targets: int
    late_targets: list
    hosts_scheduled: int
    hosts_overdue: int
    hosts_unscheduled: int

    @property
    def coverage_percent(self) -> float | None:
        """The share of scheduled hosts scanned within their schedule."""
        if not self.hosts_scheduled:
            return None
        return round(100 * (self.hosts_scheduled - self.hosts_overdue) / self.hosts_scheduled, 1)


def host_figures(now: datetime) -> tuple[dict, Freshness]:
    """The inventory's counts and its scan coverage, in one pass over the hosts.

    Coverage: hosts not scanned within their schedule, and scheduled targets
    the scheduler did not pick up. A host's schedule is the most frequent
    enabled schedule of its zone's targets (targets name addresses, CIDRs and
    hostnames, so the zone is the link a host reliably has).
    """
    targets = list(
        ScanTarget.objects.filter(enabled=True).exclude(schedule_kind=ScheduleKind.MANUAL).select_related("zone")
    )
    periods: dict[int, timedelta] = {}
    for target in targets:
        period = _period(target, now)
        periods[target.zone_id] = min(period, periods.get(target.zone_id, period))
    expressions = count_expressions()
    if periods:
        overdue = Q()
        for zone_id, period in periods.items():
            overdue |= Q(zone_id=zone_id, last_scanned__lt=now - period * OVERDUE_PERIODS)
        expressions.update(
            scheduled=Count("id", filter=Q(zone_id__in=periods)),
            overdue=Count("id", filter=overdue),
        )
    counts = Host.objects.aggregate(**expressions)
    scheduled, overdue = counts.pop("scheduled", 0), counts.pop("overdue", 0)
    late = [t for t in targets if t.next_run_at is not None and t.next_run_at < now - SCHEDULER_LATE]
    return counts, Freshness(
        scheduled_targets=len(targets),
        late_targets=late,
        hosts_scheduled=scheduled,
        hosts_overdue=overdue,
        hosts_unscheduled=counts["hosts"] - scheduled,
    )


def chart_series(range_key: str, now: datetime, live: dict) -> dict:
    """Open, unreviewed and violating ports over time: the snapshots beat took
    in the range, then the live counts as the last point."""
    range_key = range_key if range_key in CHART_RANGES else CHART_DEFAULT_RANGE
    since = now - CHART_RANGES[range_key]
    snapshots = InventorySnapshot.objects.filter(taken_at__gte=since)
    if range_key in CHART_HOURLY:
        snapshots = (
            snapshots.annotate(hour=TruncHour("taken_at"))
            .values("hour")
            .annotate(open=Max("open_ports"), unreviewed=Max("unreviewed"), violating=Max("violating"))
            .order_by("hour")
            .values_list("hour", "open", "unreviewed", "violating")
        )
    else:
        snapshots = snapshots.values_list("taken_at", "open_ports", "unreviewed", "violating")
    rows = list(snapshots)
    rows.append((now, live["open_ports"], live["unreviewed"], live["violating"]))
    return {
        # The axis spans the whole range, so a young install shows its few points where they belong.
        "from": int(since.timestamp() * 1000),
        "to": int(now.timestamp() * 1000),
        "t": [int(taken_at.timestamp() * 1000) for taken_at, *_ in rows],
        "open": [row[1] for row in rows],
        "unreviewed": [row[2] for row in rows],
        "violating": [row[3] for row in rows],
    }
