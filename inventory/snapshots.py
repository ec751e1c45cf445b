"""The inventory's headline counts, now and over time (the overview chart)."""

from datetime import datetime, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from inventory.choices import HostStatus
from inventory.models import Host, InventorySnapshot


def count_expressions() -> dict:
    """The aggregates behind the counts, named as InventorySnapshot's fields; callers
    may add their own to the same pass over the hosts."""
    return {
        "hosts": Count("id"),
        "unreachable": Count("id", filter=Q(status=HostStatus.UNREACHABLE)),
        "open_ports": Coalesce(Sum("open_count"), 0),
        "unreviewed": Coalesce(Sum("unreviewed_count"), 0),
        "violating": Coalesce(Sum("violating_count"), 0),
    }


def inventory_counts() -> dict:
    """Hosts and port counts in one pass over the hosts (their per-host
    summaries are kept by inventory.policy)."""
    return Host.objects.aggregate(**count_expressions())


def take_snapshot(now: datetime | None = None) -> InventorySnapshot:
    return InventorySnapshot.objects.create(taken_at=now or timezone.now(), **inventory_counts())


def prune_snapshots(keep: timedelta, now: datetime | None = None) -> int:
    deleted, _ = InventorySnapshot.objects.filter(taken_at__lt=(now or timezone.now()) - keep).delete()
    return deleted


# A run that ends adds a point too, at most one this often: a young install's
# chart fills in as it scans, not only every SNAPSHOT_MINUTES.
RUN_SNAPSHOT_GAP = timedelta(minutes=1)


def snapshot_after_run(now: datetime | None = None) -> InventorySnapshot | None:
    now = now or timezone.now()
    if InventorySnapshot.objects.filter(taken_at__gt=now - RUN_SNAPSHOT_GAP).exists():
        return None
    return take_snapshot(now)
