"""Beat's periodic inventory work: the overview chart's history."""

from datetime import timedelta

from celery import shared_task

from inventory import snapshots

# A year of points at the default 15 minutes is 35,040 rows: small, and the
# chart reads at most 30 days of them through the taken_at index.
KEEP_SNAPSHOTS = timedelta(days=366)


@shared_task(ignore_result=True)
def take_snapshot() -> None:
    snapshots.take_snapshot()
    snapshots.prune_snapshots(KEEP_SNAPSHOTS)
