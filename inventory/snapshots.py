"""The inventory's headline counts, now and over time (the overview chart)."""

from datetime import datetime, timedelta

from django.utils import timezone

from inventory.models import InventorySnapshot
from tallies import read
from tallies.choices import Figure

# The untimed kept counts behind the headline figures (see tallies).
UNTIMED = [Figure.HOSTS, Figure.UNREACHABLE, Figure.OPEN, Figure.UNREVIEWED, Figure.VIOLATING]


def counts_from(kept: dict) -> dict:
    """The headline counts, named as InventorySnapshot's fields, from ``tallies.read.read(UNTIMED)``."""
    return {
        "hosts": sum(kept[Figure.HOSTS].values()),
        "unreachable": sum(kept[Figure.UNREACHABLE].values()),
        "open_ports": sum(kept[Figure.OPEN].values()),
        "unreviewed": sum(kept[Figure.UNREVIEWED].values()),
        "violating": sum(kept[Figure.VIOLATING].values()),
    }


def inventory_counts() -> dict:
    """Hosts and port counts, as the triggers keep them (one read of a few rows)."""
    return counts_from(read.read(UNTIMED))


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
