"""Handing chunks to the broker, and noticing when the broker forgot them.

A chunk's state lives in the database; its Celery task is only a nudge to a
worker. So the nudge may be lost without losing the chunk: a publish the
broker refused leaves ``sent_at`` empty, and a Redis server restarted without
persistence (or flushed) forgets every message it held. Both are found by
the sweep (``scans.sweep``), which sends the chunks again. Claiming a chunk
is a conditional update, so a chunk sent twice still runs once.
"""

import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from scans.choices import ChunkStatus, ChunkStep
from scans.models import ScanChunk, ScanRun

logger = logging.getLogger(__name__)

# A key PortWatch keeps in Redis. Redis loses it with everything else when it
# restarts without persistence or is flushed: its absence says that queued
# messages may have gone with it.
BROKER_MARK_KEY = "portwatch:broker-mark"


def queue_for_zone(zone) -> str:
    """A zone's queue: its home vantage point's workers consume it (``reach.models.VantagePoint.queue``)."""
    return f"scan.{zone.name}"


def send_on_commit(run, chunk_ids: list[int]) -> None:
    """Send the chunks' tasks once the transaction that queued them commits."""
    transaction.on_commit(lambda: send(run, chunk_ids))


def send(run, chunk_ids: list[int]) -> int:
    """Publish one task per chunk of ``run`` to its vantage point's queue; record which were sent. Never raises.

    A local vantage point's workers get the chunk's id (they read the rest
    from the database); a remote one's scanners get a signed order
    (``scans.remote.order_for``). The broker may be unreachable (Redis
    restarting): the chunks stay queued with no ``sent_at`` and the
    scheduler's sweep sends them when it can.
    """
    from scans.tasks import remote_scan, scan_chunk  # noqa: PLC0415 - tasks import the modules that import this one

    queue = run.queue
    sent = []
    try:
        if run.vantage.remote:
            from scans import remote  # noqa: PLC0415 - remote imports the chunk workflow, which imports this

            for chunk in ScanChunk.objects.filter(pk__in=chunk_ids).select_related("run__vantage").order_by("pk"):
                if chunk.step == ChunkStep.SWEEP:
                    # Its vantage point was made remote after the run started: a scanner runs nmap only.
                    _refuse_remote_sweep(chunk)
                    continue
                # A new order each time: only the answer to the latest is accepted (scans.remote).
                order_id = uuid.uuid4().hex
                ScanChunk.objects.filter(pk=chunk.pk).update(order_id=order_id)
                remote_scan.apply_async(args=list(remote.order_for(chunk, order_id)), queue=queue)
                sent.append(chunk.pk)
        else:
            for chunk_id in chunk_ids:
                scan_chunk.apply_async(args=[chunk_id], queue=queue)
                sent.append(chunk_id)
    except Exception as error:  # kombu raises OperationalError and friends; all mean "not sent"
        logger.warning(
            "the broker did not take %d chunk task(s) of queue %s (%s); the scheduler will send them again",
            len(chunk_ids) - len(sent),
            queue,
            error,
        )
    if sent:
        ScanChunk.objects.filter(pk__in=sent).update(sent_at=timezone.now())
    return len(sent)


def _refuse_remote_sweep(chunk) -> None:
    from scans.services import finalize_run  # noqa: PLC0415 - services imports this module

    now = timezone.now()
    failed = ScanChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.QUEUED).update(
        status=ChunkStatus.FAILED,
        finished_at=now,
        error="Fast discovery runs masscan on a central or zone worker; this vantage point is now "
        "scanned by a remote scanner, which runs nmap only.",
    )
    if failed:
        ScanRun.objects.filter(pk=chunk.run_id).update(hosts_done=F("hosts_done") + chunk.size)
        transaction.on_commit(lambda: finalize_run(chunk.run_id))


def broker_forgot() -> bool:
    """True when the broker lost its messages since the last look (or this is the first look).

    Only Redis can: the embedded filesystem broker keeps its messages in files.
    The mark is set in the same call, so one caller acts on each loss.
    """
    if not settings.REDIS_URL:
        return False
    import redis  # noqa: PLC0415 - only where Redis is the broker

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        return bool(client.set(BROKER_MARK_KEY, uuid.uuid4().hex, nx=True))
    finally:
        client.close()


def forget_mark() -> None:
    """Undo ``broker_forgot`` when acting on the loss failed, so the next look acts again."""
    import redis  # noqa: PLC0415 - only where Redis is the broker

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.delete(BROKER_MARK_KEY)
    finally:
        client.close()
