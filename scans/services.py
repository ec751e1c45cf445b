"""Scan workflows: plan a run, run a chunk, finalize, cancel, schedule, sweep.

Celery tasks (``scans.tasks``) are thin wrappers around these functions, so
tests can call them directly. State lives in the database: every transition
is a conditional UPDATE that only one process can win, which is what makes
redelivered tasks, two beat processes and a cancel racing a worker safe.
"""

import logging
import os
import shutil
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from inventory import snapshots
from inventory.models import Service
from inventory.ports import PortSet
from scans import confirm
from scans.choices import ChunkStatus, RunStatus, ScheduleKind, Trigger
from scans.constants import DEFAULT_CHUNK_SIZE, ERROR_TEXT_MAX, MAX_CHUNK_ATTEMPTS
from scans.diff import Coverage
from scans.ingest import ingest
from scans.merge import merge_duplicates
from scans.models import ScanChunk, ScanRun, ScanTarget
from scans.nmap_runner import NmapNotFound, run_nmap
from scans.nmap_xml import NmapXmlError, NmapXmlReader
from scans.profiles import is_privileged, nmap_options, reprobe_options
from scans.scope import Scope, ScopeError
from scans.targets import TargetItem, TargetSpecError, parse_target, parse_targets, summarize

logger = logging.getLogger(__name__)

# A running chunk writes a heartbeat this often; an attempt whose heartbeat
# is older than HEARTBEAT_STALE is dead and may be taken over.
HEARTBEAT_SECONDS = 10
HEARTBEAT_STALE = timedelta(seconds=60)


class ChunkOutcome(Enum):
    DONE = "done"  # terminal now (or was already)
    BUSY = "busy"  # another live attempt owns it: try again later
    GONE = "gone"  # the chunk no longer exists


def queue_for_zone(zone) -> str:
    """Each zone's chunks go to its own queue, consumed by that zone's workers."""
    return f"scan.{zone.name}"


# --- planning ---------------------------------------------------------------


@dataclass(frozen=True)
class PlannedChunk:
    targets: list[str]
    size: int


def plan_chunks(
    items: list[TargetItem], chunk_size: int = DEFAULT_CHUNK_SIZE, *, skip: Callable[[object], bool] = lambda _: False
) -> list[PlannedChunk]:
    """Split target items into chunks of at most ``chunk_size`` addresses.

    Addresses are deduplicated and kept in order, and those ``skip`` names
    (scope exclusions) are left out; each chunk hands nmap the fewest networks
    that cover its addresses. Hostnames go into chunks of their own (resolved
    when the chunk runs).
    """
    chunks: list[PlannedChunk] = []
    pending: list = []
    seen: set = set()

    def flush():
        if pending:
            chunks.append(PlannedChunk(summarize(pending), len(pending)))
            pending.clear()

    hostnames = []
    for item in items:
        if item.kind == "hostname":
            hostnames.append(item.text)
            continue
        for address in item.addresses():
            if address in seen or skip(address):
                continue
            seen.add(address)
            pending.append(address)
            if len(pending) >= chunk_size:
                flush()
    flush()
    for start in range(0, len(hostnames), chunk_size):
        group = hostnames[start : start + chunk_size]
        chunks.append(PlannedChunk(group, len(group)))
    return chunks


def start_run(
    target: ScanTarget,
    *,
    trigger: str = Trigger.MANUAL,
    requested_by=None,
    schedule_slot: datetime | None = None,
    only: str | None = None,
) -> ScanRun:
    """Create a run of ``target`` with its chunks and enqueue them on commit.

    ``only`` narrows the run to one address or hostname of the target ("scan
    this host now"). The scope is checked again here, since it may have
    changed since the target was saved: ScopeError refuses the run.
    """
    items = parse_targets(target.targets, max_addresses=settings.SCAN_MAX_TARGET_ADDRESSES)
    if only:
        items = [_member_of(parse_target(only.strip()), items, target)]
    scope = Scope.current()
    scope.check_items(items)
    ports = PortSet.parse(target.ports) if target.ports else None
    options = nmap_options(target.profile, ports, privileged=is_privileged(), host_timeout=settings.NMAP_HOST_TIMEOUT)
    planned = plan_chunks(items, settings.SCAN_CHUNK_SIZE, skip=scope.is_excluded)
    with transaction.atomic():
        run = ScanRun.objects.create(
            target=target,
            zone=target.zone,
            profile=target.profile,
            trigger=trigger,
            requested_by=requested_by,
            targets="\n".join(item.text for item in items),
            ports=str(ports) if ports else "",
            nmap_options=options,
            schedule_slot=schedule_slot,
            hosts_total=sum(chunk.size for chunk in planned),
        )
        chunks = ScanChunk.objects.bulk_create(
            ScanChunk(run=run, index=index, targets=chunk.targets, size=chunk.size)
            for index, chunk in enumerate(planned)
        )
        _enqueue_on_commit(run, [chunk.pk for chunk in chunks])
    logger.info("run %s of target %s: %d chunk(s), %d address(es)", run.public_id, target, len(chunks), run.hosts_total)
    return run


def _member_of(item: TargetItem, items: list[TargetItem], target: ScanTarget) -> TargetItem:
    """``item`` if the target covers it: "scan this host" never widens a target."""
    for candidate in items:
        if item.kind == "hostname":
            if candidate.kind == "hostname" and candidate.text == item.text:
                return item
        elif (
            candidate.first is not None
            and item.first.version == candidate.first.version
            and candidate.first <= item.first
            and item.last <= candidate.last
        ):
            return item
    raise TargetSpecError(f"{item.text} is not part of the target “{target.name}”.")


def _enqueue_on_commit(run: ScanRun, chunk_ids: list[int]) -> None:
    from scans.tasks import scan_chunk  # noqa: PLC0415 - tasks import this module

    queue = queue_for_zone(run.zone)

    def send():
        for chunk_id in chunk_ids:
            scan_chunk.apply_async(args=[chunk_id], queue=queue)

    transaction.on_commit(send)


# --- running a chunk ----------------------------------------------------------


class ResolutionError(RuntimeError):
    """A hostname of the chunk did not resolve, or resolved out of scope."""


def run_chunk(chunk_id: int, *, worker: str = "") -> ChunkOutcome:
    """Claim a chunk, run nmap over it, ingest the result, finalize the run."""
    claim = _claim(chunk_id, worker)
    if not isinstance(claim, ScanChunk):
        return claim
    chunk = claim
    workdir = settings.SCAN_WORK_DIR / f"chunk-{chunk.pk}-{chunk.attempts}"
    try:
        _scan_and_ingest(chunk, workdir)
    except SoftTimeLimitExceeded:
        _finish(
            chunk, ChunkStatus.FAILED, "The chunk hit its time limit (SCAN_CHUNK_SOFT_TIME_LIMIT); nmap was stopped."
        )
    except (NmapNotFound, NmapXmlError, ResolutionError, ScopeError) as error:
        _finish(chunk, ChunkStatus.FAILED, str(error))
    except Exception as error:
        logger.exception("chunk %s failed", chunk.pk)
        _finish(chunk, ChunkStatus.FAILED, f"Internal error: {type(error).__name__}: {error}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    finalize_run(chunk.run_id)
    return ChunkOutcome.DONE


def _claim(chunk_id: int, worker: str) -> ScanChunk | ChunkOutcome:
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
        if chunk.status == ChunkStatus.RUNNING and not _attempt_is_dead(chunk, now):
            return ChunkOutcome.BUSY
        if chunk.attempts >= MAX_CHUNK_ATTEMPTS:
            _mark(
                chunk,
                ChunkStatus.FAILED,
                f"Gave up after {chunk.attempts} attempts: the worker running it was lost each time.",
                now,
            )
            transaction.on_commit(lambda: finalize_run(chunk.run_id))
            return ChunkOutcome.DONE
        chunk.status = ChunkStatus.RUNNING
        chunk.attempts += 1
        chunk.started_at = now
        chunk.heartbeat_at = now
        chunk.worker = worker or socket.gethostname()
        chunk.pid = os.getpid()
        chunk.error = ""
        chunk.save(update_fields=["status", "attempts", "started_at", "heartbeat_at", "worker", "pid", "error"])
        ScanRun.objects.filter(pk=chunk.run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now
        )
    return chunk


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


def _scan_and_ingest(chunk: ScanChunk, workdir) -> None:
    run = chunk.run
    addresses = _resolve(chunk, Scope.current())
    ScanChunk.objects.filter(pk=chunk.pk).update(addresses=[str(address) for address in addresses])
    should_stop = _stop_check(chunk)

    result = run_nmap(list(run.nmap_options), summarize(addresses), workdir, should_stop=should_stop)
    if result.stopped:
        _finish(chunk, ChunkStatus.CANCELLED, "The run was cancelled; nmap was stopped.")
        return
    if not result.ok:
        detail = result.stderr or "no error output"
        _finish(chunk, ChunkStatus.FAILED, f"nmap exited with status {result.returncode}: {detail}")
        return
    # A chunk is bounded (SCAN_CHUNK_SIZE addresses): its hosts fit in memory,
    # which lets the re-probe look at the would-be changes before any write.
    # nmap lists an address once per target that names it: merged here.
    with open(result.xml_path, "rb") as xml:
        reader = NmapXmlReader(xml)
        observations = merge_duplicates(reader.entries(), reader.info.probed)
    coverage = Coverage(frozenset(str(address) for address in addresses), reader.info.probed, complete=True)
    confirmation = None
    if settings.SCAN_CONFIRM_CHANGES and run.profile is not None:
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
            raise ResolutionError(f"The hostname {item.text} did not resolve: {error.strerror}.") from None
        for info in infos:
            address = parse_target(info[4][0].split("%")[0]).first
            refusal = scope.refusal(address)
            if refusal:
                raise ResolutionError(f"Refused to scan {item.text}: it resolved to {address}, and {refusal}.")
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
        ScanRun.objects.filter(pk=chunk.run_id).update(
            hosts_done=F("hosts_done") + locked.size, hosts_up=F("hosts_up") + summary.hosts_up
        )
    logger.info("chunk %s ingested: %d host(s) up, changes %s", chunk.pk, summary.hosts_up, dict(summary.changes))


def _finish(chunk: ScanChunk, status: str, error: str) -> bool:
    """End the current attempt unless someone else already did."""
    with transaction.atomic():
        locked = (
            ScanChunk.objects.select_for_update()
            .filter(pk=chunk.pk, status=ChunkStatus.RUNNING, attempts=chunk.attempts)
            .first()
        )
        if locked is None:
            return False
        _mark(locked, status, error, timezone.now())
    return True


def _mark(chunk: ScanChunk, status: str, error: str, now: datetime) -> None:
    """Set a terminal status and count the chunk's addresses as done."""
    chunk.status = status
    chunk.error = error[:ERROR_TEXT_MAX]
    chunk.finished_at = now
    chunk.save(update_fields=["status", "error", "finished_at"])
    ScanRun.objects.filter(pk=chunk.run_id).update(hosts_done=F("hosts_done") + chunk.size)


# --- finishing, cancelling ----------------------------------------------------


def finalize_run(run_id: int) -> ScanRun | None:
    """Close the run if every chunk is terminal. Safe to call any number of times."""
    with transaction.atomic():
        run = ScanRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.is_terminal:
            return run
        statuses = Counter(run.chunks.values_list("status", flat=True))
        if statuses[ChunkStatus.QUEUED] or statuses[ChunkStatus.RUNNING]:
            return run
        total = sum(statuses.values())
        if run.cancel_requested:
            run.status = RunStatus.CANCELLED
        elif statuses[ChunkStatus.SUCCEEDED] == total:
            run.status = RunStatus.SUCCEEDED
        elif statuses[ChunkStatus.SUCCEEDED]:
            run.status = RunStatus.PARTIAL
        else:
            run.status = RunStatus.FAILED
        errors = list(
            run.chunks.filter(status=ChunkStatus.FAILED).exclude(error="").values_list("error", flat=True)[:3]
        )
        run.error = "\n".join(errors)[:ERROR_TEXT_MAX]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
    logger.info("run %s finished: %s", run.public_id, run.status)
    snapshots.snapshot_after_run()
    return run


def cancel_run(run: ScanRun) -> bool:
    """Ask a run to stop: queued chunks are cancelled now, running ones stop nmap."""
    now = timezone.now()
    with transaction.atomic():
        if not ScanRun.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
            cancel_requested=True
        ):
            return False
        queued = ScanChunk.objects.select_for_update().filter(run=run, status=ChunkStatus.QUEUED)
        size = queued.aggregate(total=Sum("size"))["total"] or 0
        queued.update(
            status=ChunkStatus.CANCELLED, finished_at=now, error="The run was cancelled before this chunk started."
        )
        ScanRun.objects.filter(pk=run.pk).update(hosts_done=F("hosts_done") + size)
        transaction.on_commit(lambda: finalize_run(run.pk))
    return True


# --- the scheduler's tick -------------------------------------------------------


def enqueue_due_runs(now: datetime | None = None) -> list[ScanRun]:
    """Start a run for every target whose schedule slot has come.

    Each slot is claimed by moving ``next_run_at`` forward with a conditional
    UPDATE: whichever beat process (or tick) gets there first starts the run,
    the others see nothing to do; the unique (target, slot) constraint on runs
    backs this up. A target whose previous run is still going skips the slot,
    and says so in the log and on the target's page.
    """
    now = now or timezone.now()
    started = []
    due = ScanTarget.objects.filter(enabled=True, next_run_at__lte=now).exclude(schedule_kind=ScheduleKind.MANUAL)
    for target in due.select_related("zone", "profile"):
        slot = target.next_run_at
        following = target.schedule.slot_after(slot, now)
        if not ScanTarget.objects.filter(pk=target.pk, next_run_at=slot).update(next_run_at=following):
            continue
        busy = target.runs.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).first()
        if busy is not None:
            ScanTarget.objects.filter(pk=target.pk).update(last_skipped_slot=slot)
            logger.warning(
                "schedule of target %s: slot %s skipped, run %s is still %s",
                target,
                slot.isoformat(),
                busy.public_id,
                busy.status,
            )
            continue
        try:
            started.append(start_run(target, trigger=Trigger.SCHEDULE, schedule_slot=slot))
        except (TargetSpecError, ScopeError) as error:
            started.append(_refused_run(target, slot, str(error)))
    return started


def _refused_run(target: ScanTarget, slot: datetime, reason: str) -> ScanRun:
    """A scheduled run that could not start is recorded as failed, with why."""
    logger.warning("schedule of target %s: slot %s refused: %s", target, slot.isoformat(), reason)
    now = timezone.now()
    return ScanRun.objects.create(
        target=target,
        zone=target.zone,
        profile=target.profile,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.FAILED,
        targets=target.targets,
        ports=target.ports,
        schedule_slot=slot,
        error=f"Refused: {reason}",
        started_at=now,
        finished_at=now,
    )


def sweep(now: datetime | None = None) -> None:
    """Find work the broker lost and hand it out again.

    - a running chunk whose heartbeat stopped (its worker died) is queued again;
    - a queued chunk older than the broker's visibility timeout was lost by the
      broker (or a filesystem broker lost it in a crash) and is sent again;
    - a run whose chunks are all terminal but which was never closed is closed.
    Duplicate deliveries are harmless: claiming a chunk is a conditional update.
    """
    now = now or timezone.now()
    dead = ScanChunk.objects.filter(status=ChunkStatus.RUNNING, heartbeat_at__lt=now - HEARTBEAT_STALE)
    for chunk in dead.select_related("run__zone"):
        if ScanChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.RUNNING, heartbeat_at=chunk.heartbeat_at).update(
            status=ChunkStatus.QUEUED, queued_at=now
        ):
            logger.warning("chunk %s: worker %s stopped answering; queued again", chunk.pk, chunk.worker)
            _enqueue_on_commit(chunk.run, [chunk.pk])
    lost_before = now - timedelta(seconds=settings.BROKER_VISIBILITY_TIMEOUT)
    lost = ScanChunk.objects.filter(status=ChunkStatus.QUEUED, queued_at__lt=lost_before)
    for chunk in lost.select_related("run__zone"):
        if ScanChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.QUEUED, queued_at=chunk.queued_at).update(
            queued_at=now
        ):
            logger.warning("chunk %s: queued since %s, sent again", chunk.pk, chunk.queued_at.isoformat())
            _enqueue_on_commit(chunk.run, [chunk.pk])
    open_runs = ScanRun.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exclude(
        chunks__status__in=[ChunkStatus.QUEUED, ChunkStatus.RUNNING]
    )
    for run_id in open_runs.values_list("pk", flat=True):
        finalize_run(run_id)


def expire_flapping(now: datetime | None = None) -> int:
    """Clear the flapping mark of ports that have not toggled for a whole window.

    The mark is set when a change is recorded; a port that then settles makes
    no change at all, so the tick takes the mark off once FLAP_WINDOW has
    passed since its last change. Returns how many ports settled.
    """
    now = now or timezone.now()
    settled_before = now - timedelta(minutes=settings.FLAP_WINDOW_MINUTES)
    return Service.objects.filter(flapping=True, last_changed__lt=settled_before).update(flapping=False)
