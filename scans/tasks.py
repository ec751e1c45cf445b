"""Celery tasks: thin wrappers that take ids and call the scan workflows."""

from celery import shared_task
from django.conf import settings
from django.db import transaction

from inventory import policy
from scans import chunks, services, sweep


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.SCAN_CHUNK_SOFT_TIME_LIMIT,
    time_limit=settings.SCAN_CHUNK_TIME_LIMIT,
    max_retries=None,
)
def scan_chunk(self, chunk_id: int) -> None:
    outcome = chunks.run_chunk(chunk_id, worker=self.request.hostname or "")
    if outcome is chunks.ChunkOutcome.BUSY:
        # A live attempt owns the chunk (a duplicate delivery): look again
        # once its heartbeat would have gone stale.
        raise self.retry(countdown=chunks.HEARTBEAT_STALE.total_seconds())


@shared_task
def tick() -> None:
    services.enqueue_due_runs()
    sweep.sweep()
    services.expire_flapping()
    with transaction.atomic():
        # Expired approvals fall back to unreviewed; rows left unevaluated
        # (an upgrade, an interrupted evaluation) are caught up.
        policy.expire()
        policy.evaluate_pending()
