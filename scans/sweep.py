"""The scheduler's sweep: find work that nobody is doing and hand it out again.

Runs on every tick of beat (``scans.tasks.tick``). The database says what
should be happening; the sweep makes the broker agree:

- a running chunk whose heartbeat stopped (its worker died) is queued again;
- a queued chunk whose back-off has passed, or whose task never reached the
  broker (the publish failed), is sent;
- when Redis lost its messages (restarted without persistence, flushed),
  every queued chunk is sent again at once, instead of after the broker's
  visibility timeout (72 minutes by default);
- a queued chunk older than the visibility timeout is sent again whatever
  the reason it was lost;
- a run whose chunks are all terminal but which was never closed is closed.

Sending a chunk twice is harmless: claiming it is a conditional update, and
a chunk that waits out its back-off ignores an early task.
"""

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from scans import queueing
from scans.choices import AttemptOutcome, ChunkStatus, RunStatus
from scans.chunks import HEARTBEAT_STALE
from scans.models import ChunkAttempt, ScanChunk, ScanRun
from scans.services import finalize_run

logger = logging.getLogger(__name__)

# A chunk queued this long ago without a record of its task being sent was
# not sent (its publish failed, or the process died before it): send it.
UNSENT_GRACE = timedelta(seconds=30)
# Most chunks one sweep sends; the next tick sends the rest.
SEND_BATCH = 5000


def sweep(now: datetime | None = None) -> None:
    now = now or timezone.now()
    _requeue_dead(now)
    _send_due(now)
    open_runs = ScanRun.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exclude(
        chunks__status__in=[ChunkStatus.QUEUED, ChunkStatus.RUNNING]
    )
    for run_id in open_runs.values_list("pk", flat=True):
        finalize_run(run_id)


def _requeue_dead(now: datetime) -> None:
    dead = ScanChunk.objects.filter(status=ChunkStatus.RUNNING, heartbeat_at__lt=now - HEARTBEAT_STALE)
    for chunk in dead.select_related("run__zone", "run__vantage__home_of"):
        if ScanChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.RUNNING, heartbeat_at=chunk.heartbeat_at).update(
            status=ChunkStatus.QUEUED, queued_at=now, sent_at=None
        ):
            ChunkAttempt.objects.filter(chunk=chunk, number=chunk.attempts, finished_at__isnull=True).update(
                outcome=AttemptOutcome.LOST,
                error=f"The worker {chunk.worker} stopped answering (no heartbeat for {HEARTBEAT_STALE.seconds} s).",
                finished_at=now,
            )
            logger.warning("chunk %s: worker %s stopped answering; queued again", chunk.pk, chunk.worker)
            queueing.send(chunk.run, [chunk.pk])


def _send_due(now: datetime) -> None:
    """Send the queued chunks whose task the broker does not (or may not) hold."""
    waiting = Q(retry_at__isnull=True) | Q(retry_at__lte=now)
    unsent = Q(sent_at__isnull=True) & (Q(retry_at__isnull=False) | Q(queued_at__lt=now - UNSENT_GRACE))
    lost = Q(queued_at__lt=now - timedelta(seconds=settings.BROKER_VISIBILITY_TIMEOUT))
    due = ScanChunk.objects.filter(waiting, status=ChunkStatus.QUEUED)
    try:
        forgot = queueing.broker_forgot()
    except Exception as error:  # the broker is down: nothing can be sent now anyway
        logger.warning("the broker did not answer (%s); queued chunks are sent on a later tick", error)
        return
    if not forgot:
        due = due.filter(unsent | lost)
    by_run: dict[int, list[int]] = defaultdict(list)
    runs = {}
    for chunk in due.select_related("run__vantage__home_of").order_by("queued_at")[:SEND_BATCH]:
        by_run[chunk.run_id].append(chunk.pk)
        runs[chunk.run_id] = chunk.run
    if forgot and by_run:
        logger.warning(
            "the broker lost its messages (restarted without persistence, or flushed): "
            "sending %d queued chunk(s) again",
            sum(len(ids) for ids in by_run.values()),
        )
    sent = 0
    for run_id, chunk_ids in by_run.items():
        # Touch queued_at so the visibility-timeout rule waits another full period.
        ScanChunk.objects.filter(pk__in=chunk_ids, queued_at__lt=now - UNSENT_GRACE).update(queued_at=now)
        sent += queueing.send(runs[run_id], chunk_ids)
    if forgot and sent < sum(len(ids) for ids in by_run.values()):
        queueing.forget_mark()  # some were not sent: look again on the next tick
