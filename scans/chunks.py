"""Running one chunk: claim it, run nmap, ingest the result, or fail truthfully.

Every transition is a conditional UPDATE (or a row lock) that only one
process can win, which is what makes redelivered tasks and a cancel racing a
worker safe. Each try is an attempt row (``ChunkAttempt``). A try that fails
for a reason that may pass (``scans.failures``) puts the chunk back in the
queue with back-off, up to SCAN_CHUNK_MAX_ATTEMPTS tries; the sweep sends it
when its time comes. A failed try concludes nothing: only a finished nmap
run is ingested.
"""

import logging
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from enum import Enum

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from inventory.constants import PORT_MAX
from inventory.ports import PortSet
from scans import confirm, discovery, failures
from scans.choices import AttemptOutcome, ChangeKind, ChunkStatus, ChunkStep, RunStatus
from scans.constants import ERROR_TEXT_MAX
from scans.failures import Failure
from scans.ingest.diff import Coverage
from scans.ingest.entry import ingest
from scans.masscan_runner import MasscanNotFound
from scans.merge import merge_duplicates
from scans.models import ChunkAttempt, ScanChunk, ScanRun
from scans.nmap_runner import NmapNotFound, run_nmap
from scans.nmap_xml import NmapXmlError, NmapXmlReader
from scans.profiles import is_privileged, reprobe_options
from scans.scope import Scope, ScopeError
from scans.services import finalize_run
from scans.targets import parse_target, summarize

logger = logging.getLogger(__name__)

# A running chunk writes a heartbeat this often; an attempt whose heartbeat
# is older than HEARTBEAT_STALE is dead and may be taken over.
HEARTBEAT_SECONDS = 10
HEARTBEAT_STALE = timedelta(seconds=60)


class ChunkOutcome(Enum):
    DONE = "done"  # terminal now (or was already)
    BUSY = "busy"  # another live attempt owns it: try again later
    WAITING = "waiting"  # waiting out its back-off: the sweep sends it when due
    GONE = "gone"  # the chunk no longer exists


class ChunkFailed(Exception):
    """An attempt failed; ``failure`` says why and whether to try again."""

    def __init__(self, failure: Failure):
        super().__init__(failure.message)
        self.failure = failure


def run_chunk(chunk_id: int, *, worker: str = "", queue: str | None = None) -> ChunkOutcome:
    """Claim a chunk, run nmap over it, ingest the result, finalize the run.

    Only from where the chunk's vantage point scans: a task taken from
    another queue than its run's (``queue``: where this delivery came from),
    or a remote vantage point's chunk (its scanners get orders, never this
    task), is refused. Whoever can publish to the broker (a remote scanner
    can) must not make a central worker scan another vantage point's targets
    from the centre's own place in the network.
    """
    run = ScanRun.objects.select_related("vantage__home_of").filter(chunks__pk=chunk_id).first()
    remote = run is not None and run.vantage is not None and run.vantage.remote
    if run is not None and (remote or (queue and queue != run.queue)):
        logger.warning(
            "chunk %s refused: its run is scanned from %s (queue %s), the task came from %r",
            chunk_id,
            run.vantage,
            run.queue,
            queue,
        )
        return ChunkOutcome.DONE
    claimed = claim(chunk_id, worker)
    if not isinstance(claimed, ScanChunk):
        return claimed
    chunk = claimed
    workdir = settings.SCAN_WORK_DIR / f"chunk-{chunk.pk}-{chunk.attempts}"
    try:
        _scan_and_ingest(chunk, workdir)
    except SoftTimeLimitExceeded:
        fail(chunk, Failure("The chunk hit its time limit (SCAN_CHUNK_SOFT_TIME_LIMIT); nmap was stopped.", False))
    except ChunkFailed as failed:
        fail(chunk, failed.failure)
    except (NmapNotFound, MasscanNotFound, NmapXmlError, ScopeError) as error:
        fail(chunk, Failure(str(error), False))
    except Exception as error:
        failure = failures.from_exception(error)
        if not failure.transient:
            logger.exception("chunk %s failed", chunk.pk)
        fail(chunk, failure)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    finalize_run(chunk.run_id)
    return ChunkOutcome.DONE


# --- claiming ------------------------------------------------------------------------


def claim(chunk_id: int, worker: str) -> ScanChunk | ChunkOutcome:
    now = timezone.now()
    with transaction.atomic():
        chunk = ScanChunk.objects.select_for_update(of=("self",)).select_related("run").filter(pk=chunk_id).first()
        if chunk is None:
            return ChunkOutcome.GONE
        if chunk.is_terminal:
            return ChunkOutcome.DONE
        if chunk.run.cancel_requested:
            _mark(chunk, ChunkStatus.CANCELLED, "The run was cancelled.", now)
            transaction.on_commit(lambda: finalize_run(chunk.run_id))
            return ChunkOutcome.DONE
        if chunk.status == ChunkStatus.QUEUED and chunk.retry_at is not None and chunk.retry_at > now:
            return ChunkOutcome.WAITING  # a copy of the task came early (the sweep, a redelivery)
        if chunk.status == ChunkStatus.RUNNING:
            if not _attempt_is_dead(chunk, now):
                return ChunkOutcome.BUSY
            _end_attempt(chunk, AttemptOutcome.LOST, "The worker running it died or stopped answering.", now)
        if chunk.attempts >= settings.SCAN_CHUNK_MAX_ATTEMPTS:
            _mark(chunk, ChunkStatus.FAILED, _gave_up(chunk), now)
            transaction.on_commit(lambda: finalize_run(chunk.run_id))
            return ChunkOutcome.DONE
        chunk.status = ChunkStatus.RUNNING
        chunk.attempts += 1
        chunk.started_at = now
        chunk.heartbeat_at = now
        chunk.retry_at = None
        chunk.worker = worker or socket.gethostname()
        chunk.pid = os.getpid()
        chunk.error = ""
        chunk.save(
            update_fields=["status", "attempts", "started_at", "heartbeat_at", "retry_at", "worker", "pid", "error"]
        )
        ChunkAttempt.objects.create(chunk=chunk, number=chunk.attempts, worker=chunk.worker, started_at=now)
        ScanRun.objects.filter(pk=chunk.run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now
        )
    return chunk


def _gave_up(chunk: ScanChunk) -> str:
    last = chunk.tries.exclude(error="").order_by("-number").values_list("error", flat=True).first()
    reason = f" The last error: {last}" if last else ""
    return f"Gave up after {chunk.attempts} attempts.{reason}"


def _attempt_is_dead(chunk: ScanChunk, now: datetime) -> bool:
    if chunk.heartbeat_at is None or now - chunk.heartbeat_at > HEARTBEAT_STALE:
        return True
    # On the same machine a dead process is known at once (a worker killed
    # with SIGKILL), without waiting for its heartbeat to go stale.
    same_machine = chunk.worker.rpartition("@")[2] == socket.gethostname()
    if same_machine and chunk.pid:
        return chunk.pid == os.getpid() or not _process_alive(chunk.pid)
    return False


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- scanning and ingesting -------------------------------------------------------------


def _scan_and_ingest(chunk: ScanChunk, workdir) -> None:
    addresses = _resolve(chunk, Scope.current())
    ScanChunk.objects.filter(pk=chunk.pk).update(addresses=[str(address) for address in addresses])
    should_stop = _stop_check(chunk)

    if chunk.step == ChunkStep.SWEEP:
        swept = discovery.sweep(chunk, addresses, workdir, should_stop)
        if swept.stopped:
            stopped = "The run was cancelled; masscan was stopped."
            _finish(chunk, ChunkStatus.CANCELLED, AttemptOutcome.CANCELLED, stopped)
        elif swept.failure is not None:
            raise ChunkFailed(swept.failure)
        return
    result = run_nmap(nmap_options_of(chunk), summarize(addresses), workdir, should_stop=should_stop)
    if result.stopped:
        _finish(chunk, ChunkStatus.CANCELLED, AttemptOutcome.CANCELLED, "The run was cancelled; nmap was stopped.")
        return
    if not result.ok:
        raise ChunkFailed(failures.nmap_exit(result.returncode, result.stderr))
    ingest_output(chunk, result.xml_path, [str(address) for address in addresses], workdir, should_stop=should_stop)


def nmap_options_of(chunk: ScanChunk) -> list[str]:
    """The run's frozen nmap options; a confirm chunk adds the ports its sweep found (and no others)."""
    options = list(chunk.run.nmap_options)
    if chunk.step == ChunkStep.CONFIRM:
        options += ["-p", str(PortSet.parse(chunk.ports, max_items=PORT_MAX))]
    return options


def ingest_output(chunk: ScanChunk, xml_path, addresses: list[str], workdir, *, should_stop=None) -> None:
    """Ingest what a finished nmap wrote for the chunk (here, or on a remote scanner: ``scans.remote``)."""
    run = chunk.run
    # A chunk is bounded (SCAN_CHUNK_SIZE addresses): its hosts fit in memory,
    # which lets the re-probe look at the would-be changes before any write.
    # nmap lists an address once per target that names it: merged here.
    with open(xml_path, "rb") as xml:
        reader = NmapXmlReader(xml)
        observations = merge_duplicates(reader.entries(), reader.info.probed)
    coverage = Coverage(frozenset(addresses), reader.info.probed, complete=True)
    confirmation = None
    # The re-probe checks would-be changes of the inventory (the home vantage
    # point's view), from here: not for another vantage point, nor a remote one.
    if settings.SCAN_CONFIRM_CHANGES and run.profile is not None and run.from_home and not run.vantage.remote:
        expected = confirm.candidates(run.zone, coverage, observations)

        def options_for(ports):
            return reprobe_options(
                run.profile, ports, privileged=is_privileged(), host_timeout=settings.NMAP_HOST_TIMEOUT
            )

        confirmation = confirm.reprobe(expected, options_for, workdir, should_stop)
        coverage = replace(coverage, unconfirmed=confirmation.unconfirmed)
    _ingest_chunk(chunk, coverage, observations, confirmation)


def _stop_check(chunk: ScanChunk) -> Callable[[], bool]:
    """Polled while nmap runs: beat the heart, and say whether to stop."""
    last_beat = [timezone.now()]

    def should_stop() -> bool:
        now = timezone.now()
        if (now - last_beat[0]).total_seconds() >= HEARTBEAT_SECONDS:
            last_beat[0] = now
            still_mine = ScanChunk.objects.filter(
                pk=chunk.pk, status=ChunkStatus.RUNNING, attempts=chunk.attempts
            ).update(heartbeat_at=now)
            if not still_mine:
                return True
        return ScanRun.objects.filter(pk=chunk.run_id, cancel_requested=True).exists()

    return should_stop


def _resolve(chunk: ScanChunk, scope: Scope) -> list:
    """The chunk's addresses, hostnames resolved now (at run time) and checked
    against the scope again: a name that resolves outside it is refused."""
    addresses = []
    for text in chunk.targets:
        item = parse_target(text)
        if item.kind != "hostname":
            addresses.extend(item.addresses())
            continue
        try:
            infos = socket.getaddrinfo(item.text, None, proto=socket.IPPROTO_TCP)
        except socket.gaierror as error:
            raise ChunkFailed(failures.resolution(item.text, error)) from None
        for info in infos:
            address = parse_target(info[4][0].split("%")[0]).first
            refusal = scope.refusal(address)
            if refusal:
                raise ChunkFailed(
                    Failure(f"Refused to scan {item.text}: it resolved to {address}, and {refusal}.", False)
                )
            addresses.append(address)
    return sorted(set(addresses), key=lambda address: (address.version, address))


def _ingest_chunk(
    chunk: ScanChunk, coverage: Coverage, observations: list, confirmation: confirm.Confirmation | None
) -> None:
    now = timezone.now()
    with transaction.atomic():
        locked = ScanChunk.objects.select_for_update().filter(pk=chunk.pk).first()
        if locked is None or locked.status != ChunkStatus.RUNNING or locked.attempts != chunk.attempts:
            return  # cancelled, or taken over by another attempt: not ours to write
        if locked.ingested_at is not None:
            return
        summary = ingest(
            run=chunk.run, chunk=locked, zone=chunk.run.zone, coverage=coverage, observations=observations, now=now
        )
        locked.status = ChunkStatus.SUCCEEDED
        locked.ingested_at = now
        locked.finished_at = now
        locked.hosts_up = summary.hosts_up
        locked.coverage = {protocol: str(ports) for protocol, ports in coverage.probed.items()}
        locked.confirmation = confirmation.as_dict() if confirmation else {}
        locked.save(update_fields=["status", "ingested_at", "finished_at", "hosts_up", "coverage", "confirmation"])
        _end_attempt(locked, AttemptOutcome.SUCCEEDED, "", now)
        ScanRun.objects.filter(pk=chunk.run_id).update(
            hosts_done=F("hosts_done") + locked.size, hosts_up=F("hosts_up") + summary.hosts_up
        )
    changed = ", ".join(f"{n} {ChangeKind(kind).label}" for kind, n in sorted(summary.changes.items()) if n)
    logger.info("chunk %s ingested: %d host(s) up, %s", chunk.pk, summary.hosts_up, changed or "no changes")


# --- ending an attempt ------------------------------------------------------------------


def retry_delay(attempt: int) -> timedelta:
    """Back-off after the ``attempt``-th try failed: base x 2^(n-1), capped."""
    seconds = settings.SCAN_CHUNK_RETRY_SECONDS * 2 ** max(0, attempt - 1)
    return timedelta(seconds=min(seconds, settings.SCAN_CHUNK_RETRY_MAX_SECONDS))


def fail(chunk: ScanChunk, failure: Failure) -> None:
    """End the attempt: back in the queue if it may pass and tries are left, failed otherwise."""
    if failure.transient and chunk.attempts < settings.SCAN_CHUNK_MAX_ATTEMPTS:
        with transaction.atomic():
            locked = _current_attempt(chunk)
            if locked is None:
                return
            now = timezone.now()
            locked.status = ChunkStatus.QUEUED
            locked.retry_at = now + retry_delay(locked.attempts)
            locked.queued_at = now
            locked.sent_at = None  # the sweep sends it once retry_at has come
            locked.error = failure.message[:ERROR_TEXT_MAX]
            locked.save(update_fields=["status", "retry_at", "queued_at", "sent_at", "error"])
            _end_attempt(locked, AttemptOutcome.RETRY, failure.message, now)
        logger.warning(
            "chunk %s, attempt %d failed, tried again at %s: %s",
            chunk.pk,
            chunk.attempts,
            locked.retry_at.isoformat(),
            failure.message,
        )
        return
    if failure.transient:
        message = f"Gave up after {chunk.attempts} attempts. The last error: {failure.message}"
    else:
        message = failure.message
    _finish(chunk, ChunkStatus.FAILED, AttemptOutcome.FAILED, message, attempt_error=failure.message)


def _current_attempt(chunk: ScanChunk) -> ScanChunk | None:
    """The chunk, locked, if this attempt still owns it."""
    return (
        ScanChunk.objects.select_for_update()
        .filter(pk=chunk.pk, status=ChunkStatus.RUNNING, attempts=chunk.attempts)
        .first()
    )


def _finish(chunk: ScanChunk, status: str, outcome: str, error: str, *, attempt_error: str | None = None) -> bool:
    """End the current attempt with a terminal status unless someone else already did."""
    with transaction.atomic():
        locked = _current_attempt(chunk)
        if locked is None:
            return False
        now = timezone.now()
        _mark(locked, status, error, now)
        _end_attempt(locked, outcome, error if attempt_error is None else attempt_error, now)
    return True


def _end_attempt(chunk: ScanChunk, outcome: str, error: str, now: datetime) -> None:
    ChunkAttempt.objects.filter(chunk=chunk, number=chunk.attempts, finished_at__isnull=True).update(
        outcome=outcome, error=error[:ERROR_TEXT_MAX], finished_at=now
    )


def _mark(chunk: ScanChunk, status: str, error: str, now: datetime) -> None:
    """Set a terminal status and count the chunk's addresses as done."""
    chunk.status = status
    chunk.error = error[:ERROR_TEXT_MAX]
    chunk.finished_at = now
    chunk.save(update_fields=["status", "error", "finished_at"])
    ScanRun.objects.filter(pk=chunk.run_id).update(hosts_done=F("hosts_done") + chunk.size)
