"""Which hosts were not scanned within their schedule: the overview's figure and the hosts list's filter.

A host's schedule is the most frequent enabled schedule of its zone's
targets (targets name addresses, CIDRs and hostnames, so the zone is the link
a host reliably has). A host is overdue when that schedule should have
scanned it OVERDUE_PERIODS times over: one missed slot is a busy worker, two
is a problem.
"""

from datetime import datetime, timedelta

from django.db.models import Q

from scans.choices import ScheduleKind
from scans.models import ScanTarget

OVERDUE_PERIODS = 2


def period(target: ScanTarget, now: datetime) -> timedelta:
    schedule = target.schedule
    if schedule.kind == ScheduleKind.INTERVAL:
        return timedelta(minutes=schedule.interval)
    first = schedule.slot_after(now, now)
    return schedule.slot_after(first, first) - first


def scheduled_targets() -> list[ScanTarget]:
    scheduled = ScanTarget.objects.filter(enabled=True).exclude(schedule_kind=ScheduleKind.MANUAL)
    return list(scheduled.select_related("zone"))


def zone_periods(targets: list[ScanTarget], now: datetime) -> dict[int, timedelta]:
    """Each scheduled zone's most frequent schedule."""
    periods: dict[int, timedelta] = {}
    for target in targets:
        each = period(target, now)
        periods[target.zone_id] = min(each, periods.get(target.zone_id, each))
    return periods


def overdue_hosts(now: datetime) -> Q:
    """Hosts (a condition on Host) of scheduled zones not scanned since their schedule's limit (never: overdue)."""
    condition = Q(pk__in=[])
    for zone_id, each in zone_periods(scheduled_targets(), now).items():
        condition |= Q(zone_id=zone_id) & ~Q(last_scanned__gte=now - each * OVERDUE_PERIODS)
    return condition
