"""The figures of the overview page (and of the metrics endpoint).

Everything here reads, and nothing counts the inventory: the counts are kept
by database triggers in the transactions that change hosts, ports and
changes (``tallies``), so each figure is a few indexed rows whatever the
inventory's size, and the overview can poll them every few seconds.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.db.models.functions import TruncHour
from django.utils import timezone

from inventory.choices import PolicyStatus, PortState
from inventory.models import Host, InventorySnapshot, Service, with_tag_list
from inventory.snapshots import UNTIMED, counts_from
from portwatch.shared_reading import shared
from scans import freshness
from scans.models import Change, ScanRun
from tallies import read
from tallies.choices import Figure

# A scheduled target whose next slot is this far in the past was not picked up:
# beat (the scheduler) is not running, or cannot reach the database.
SCHEDULER_LATE = timedelta(minutes=2)
BACKLOG_AGES = [
    ("under 1 day", timedelta(0), timedelta(days=1)),
    ("1-7 days", timedelta(days=1), timedelta(days=7)),
    ("7-30 days", timedelta(days=7), timedelta(days=30)),
    ("over 30 days", timedelta(days=30), None),
]
CHART_RANGES = {
    "1h": timedelta(hours=1),
    "1": timedelta(days=1),
    "7": timedelta(days=7),
    "30": timedelta(days=30),
}
CHART_LABELS = {"1h": "1 h", "1": "1 d", "7": "7 d", "30": "30 d"}
# Ranges drawn from hourly highs rather than every snapshot (720 points, not 2,880).
CHART_HOURLY = {"30"}
CHART_DEFAULT_RANGE = "7"
# Below this many points (the live one included) the overview says "not enough
# history yet" instead of a chart; the axis spans at least CHART_MIN_SPAN.
CHART_MIN_POINTS = 3
CHART_MIN_SPAN = timedelta(minutes=15)


def overview(chart_range: str) -> dict:
    """The overview's figures and recent lists: the same for every viewer, so
    read once per ``OVERVIEW_CACHE_SECONDS`` and shared (a wall of open
    overviews, each polling, is otherwise the same dozen queries per poll).
    Without a working cache every request reads its own."""
    return shared(
        f"overview:{chart_range}",
        settings.OVERVIEW_CACHE_SECONDS,
        lambda: _read_overview(chart_range, timezone.now()),
        what="overview figures",
    )


def _read_overview(chart_range: str, now: datetime) -> dict:
    counts, freshness = host_figures(now)
    return {
        "counts": counts,
        "change_counts": change_counts(now),
        "finding_counts": finding_counts(now),
        "listener_max_age_hours": settings.LISTENER_REPORT_MAX_AGE_HOURS,
        "backlog": review_backlog(now),
        "freshness": freshness,
        "chart_json": json.dumps(chart_series(chart_range, now, counts)),
        "read_at": now,
        "changes": list(Change.objects.select_related("host", "run")[:15]),
        "runs": list(ScanRun.objects.select_related("target", "vantage")[:8]),
        "hosts": list(with_tag_list(Host.objects.select_related("zone")).order_by("-last_change_at")[:10]),
        "violating_ports": violating_ports(),
    }


VIOLATING_SHOWN = 8


def violating_ports() -> list[Service]:
    """The ports a rule rejects that are open, riskiest and oldest first: the review queue's
    order, read along its index (service_queue_id_idx), so a handful costs a handful."""
    return list(
        Service.objects.filter(state=PortState.OPEN, policy_status=PolicyStatus.REJECTED)
        .select_related("host__zone", "policy_rule")
        .order_by("-risk", "first_seen", "id")[:VIOLATING_SHOWN]
    )


def change_counts(now: datetime) -> dict:
    kept = read.read(
        day=read.Since(Figure.CHANGES, now - timedelta(days=1)),
        week=read.Since(Figure.CHANGES, now - timedelta(days=7)),
    )
    return {"day": sum(kept["day"].values()), "week": sum(kept["week"].values())}


def finding_counts(now: datetime) -> dict[str, int]:
    """Ports by what the hosts' fresh reports and the scans say together (listeners.findings), kept counts."""
    fresh = now - timedelta(hours=settings.LISTENER_REPORT_MAX_AGE_HOURS)
    return read.read(fresh=read.Since(Figure.FINDINGS, fresh))["fresh"]


def changes_by_kind(now: datetime) -> dict[str, int]:
    """Changes recorded in the last 24 hours, by kind."""
    return read.read(day=read.Since(Figure.CHANGES, now - timedelta(days=1)))["day"]


def review_backlog(now: datetime) -> dict:
    """Open, unreviewed ports by how long they have waited (since first seen)."""
    # Ports first seen after now - age, for each age bounding a bucket; a
    # bucket is the difference of its two bounds (the oldest: of all of them).
    ages = sorted({age for _, newer, older in BACKLOG_AGES for age in (newer, older) if age is not None})
    windows = {f"after{i}": read.Since(Figure.WAITING, now - age, strict=True) for i, age in enumerate(ages)}
    kept = read.read([Figure.UNREVIEWED], **windows)
    after = {age: sum(kept[f"after{i}"].values()) for i, age in enumerate(ages)}
    waiting = sum(kept[Figure.UNREVIEWED].values())
    return {
        "oldest": read.earliest(Figure.WAITING),
        "buckets": [
            {"label": label, "count": (after[older] if older is not None else waiting) - after[newer]}
            for label, newer, older in BACKLOG_AGES
        ],
    }


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
    """The inventory's counts and its scan coverage.

    Coverage: hosts not scanned within their schedule, and scheduled targets
    the scheduler did not pick up. A host's schedule is the most frequent
    enabled schedule of its zone's targets (targets name addresses, CIDRs and
    hostnames, so the zone is the link a host reliably has).
    """
    targets = freshness.scheduled_targets()
    periods = freshness.zone_periods(targets, now)
    # Per scheduled zone, its hosts scanned since their schedule's limit:
    # the rest of the zone's hosts are overdue (scans.freshness.overdue_hosts lists them).
    fresh = {
        f"fresh{zone_id}": read.Since(Figure.SCANNED, now - period * freshness.OVERDUE_PERIODS, item=str(zone_id))
        for zone_id, period in periods.items()
    }
    kept = read.read(UNTIMED, **fresh)
    counts = counts_from(kept)
    by_zone = kept[Figure.HOSTS]
    scheduled = sum(by_zone.get(str(zone_id), 0) for zone_id in periods)
    overdue = scheduled - sum(sum(kept[name].values()) for name in fresh)
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
    # The axis starts at the first point the range holds: a young installation's
    # few hours fill the chart instead of a sliver at the right of 7 empty days.
    start = min(rows[0][0], now - CHART_MIN_SPAN)
    return {
        "from": int(start.timestamp() * 1000),
        "to": int(now.timestamp() * 1000),
        "t": [int(taken_at.timestamp() * 1000) for taken_at, *_ in rows],
        "open": [row[1] for row in rows],
        "unreviewed": [row[2] for row in rows],
        "violating": [row[3] for row in rows],
        # One point is the live count alone: nothing to draw a line from yet.
        "enough": len(rows) >= CHART_MIN_POINTS,
    }
