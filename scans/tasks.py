"""Celery tasks: thin wrappers that take ids and call the scan workflows."""

import logging

from celery import shared_task
from django.conf import settings
from django.db import transaction

from inventory import policy
from scans import chunks, services, sweep

logger = logging.getLogger(__name__)


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


# --- remote scanners (scans.remote on the centre, scans.scanner on the scanner) ---------------


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.SCAN_CHUNK_SOFT_TIME_LIMIT,
    time_limit=settings.SCAN_CHUNK_TIME_LIMIT,
)
def remote_scan(order: dict, signature: str) -> None:
    """On a remote scanner: carry out the order, send the signed result to the centre's workers."""
    from scans import scanner  # noqa: PLC0415 - only scanners need it

    answer = scanner.carry_out(order, signature, remote_scan.request.hostname or "scanner")
    if answer is not None:
        remote_result.apply_async(args=list(answer), queue=settings.CELERY_TASK_DEFAULT_QUEUE)


@shared_task(bind=True, acks_late=True, max_retries=None)
def remote_result(self, result: dict, signature: str) -> None:
    """On a central worker: check a scanner's result and ingest it (a refused one is logged, never written)."""
    from scans import orders, remote  # noqa: PLC0415 - remote imports the chunk workflow

    try:
        outcome = remote.accept_result(result, signature)
    except orders.BadMessage as refusal:
        chunk = result.get("chunk") if isinstance(result, dict) else "?"
        logger.warning("result for chunk %s refused: %s", chunk, refusal)
        return
    if outcome is chunks.ChunkOutcome.BUSY:
        raise self.retry(countdown=chunks.HEARTBEAT_STALE.total_seconds())


@shared_task(ignore_result=True)
def scanner_alive(heartbeat: dict, signature: str) -> None:
    """On a central worker: a remote scanner's signed heartbeat, recorded like a worker's."""
    from scans import orders, remote  # noqa: PLC0415

    try:
        remote.accept_heartbeat(heartbeat, signature)
    except orders.BadMessage as refusal:
        logger.warning("heartbeat refused: %s", refusal)


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
