"""Scan workflows: plan a run into chunks, start it, finalize it, cancel it, schedule it.

Running a chunk lives in ``scans.chunks``, handing chunks to the broker in
``scans.queueing``, finding lost work in ``scans.sweep``. Celery tasks
(``scans.tasks``) are thin wrappers around these functions, so tests can call
them directly. State lives in the database: every transition is a
conditional UPDATE that only one process can win, which is what makes
redelivered tasks, two beat processes and a cancel racing a worker safe.
"""

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from inventory import snapshots
from inventory.models import Service
from inventory.ports import PortSet
from scans import discovery, queueing
from scans.choices import ChunkStatus, ChunkStep, RunStatus, ScheduleKind, Trigger
from scans.constants import DEFAULT_CHUNK_SIZE, ERROR_TEXT_MAX
from scans.models import ScanChunk, ScanRun, ScanTarget
from scans.profiles import confirm_options, is_privileged, masscan_options, nmap_options
from scans.scope import Scope, ScopeError
from scans.targets import TargetItem, TargetSpecError, parse_target, parse_targets, summarize

logger = logging.getLogger(__name__)

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


def start_runs(target: ScanTarget, **options) -> list[ScanRun]:
    """A run of ``target`` from each of its vantage points (``start_run``), the zone's home first."""
    return [start_run(target, vantage=vantage, **options) for vantage in vantage_points_of(target)]


def vantage_points_of(target: ScanTarget) -> list:
    """Where ``target`` is scanned from: its chosen vantage points, or its zone's home (home first)."""
    from reach.models import VantagePoint  # noqa: PLC0415 - reach's models import this app's

    chosen = list(target.vantage_points.select_related("home_of"))
    if not chosen:
        return [VantagePoint.home(target.zone)]
    return sorted(chosen, key=lambda vantage: (vantage.home_of_id != target.zone_id, vantage.name))


def start_run(
    target: ScanTarget,
    *,
    vantage=None,
    trigger: str = Trigger.MANUAL,
    requested_by=None,
    schedule_slot: datetime | None = None,
    only: str | None = None,
) -> ScanRun:
    """Create a run of ``target`` with its chunks and enqueue them on commit.

    ``vantage`` is where it is scanned from (default: the zone's home).
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
    profile = target.profile
    sweep_options, step, chunk_size = {}, ChunkStep.SCAN, settings.SCAN_CHUNK_SIZE
    if profile.is_fast_discovery:
        discovery.check_vantage(vantage or _home_of(target))
        sweep_options = masscan_options(
            profile, ports, max_rate=settings.MASSCAN_MAX_RATE, wait=settings.MASSCAN_WAIT_SECONDS
        )
        options = confirm_options(profile, privileged=is_privileged(), host_timeout=settings.NMAP_HOST_TIMEOUT)
        step, chunk_size = ChunkStep.SWEEP, settings.MASSCAN_CHUNK_SIZE
    else:
        options = nmap_options(profile, ports, privileged=is_privileged(), host_timeout=settings.NMAP_HOST_TIMEOUT)
    planned = plan_chunks(items, chunk_size, skip=scope.is_excluded)
    with transaction.atomic():
        run = ScanRun.objects.create(
            target=target,
            zone=target.zone,
            vantage=vantage,
            profile=target.profile,
            trigger=trigger,
            requested_by=requested_by,
            targets="\n".join(item.text for item in items),
            ports=str(ports) if ports else "",
            nmap_options=options,
            masscan_options=sweep_options,
            schedule_slot=schedule_slot,
            hosts_total=sum(chunk.size for chunk in planned),
        )
        chunks = ScanChunk.objects.bulk_create(
            ScanChunk(run=run, index=index, step=step, targets=chunk.targets, size=chunk.size)
            for index, chunk in enumerate(planned)
        )
        queueing.send_on_commit(run, [chunk.pk for chunk in chunks])
    logger.info(
        "run %s of target %s from %s: %d chunk(s), %d address(es)",
        run.public_id,
        target,
        run.vantage,
        len(chunks),
        run.hosts_total,
    )
    return run


def _home_of(target: ScanTarget):
    from reach.models import VantagePoint  # noqa: PLC0415 - reach's models import this app's

    return VantagePoint.home(target.zone)


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
    logger.info(
        "scan of %s from %s %s (run %s)",
        run.target or "an import",
        run.vantage,
        {RunStatus.SUCCEEDED: "finished", RunStatus.PARTIAL: "finished in part"}.get(run.status, run.status),
        run.public_id,
    )
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
            with transaction.atomic():
                started.extend(start_runs(target, trigger=Trigger.SCHEDULE, schedule_slot=slot))
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


def expire_flapping(now: datetime | None = None) -> int:
    """Clear the flapping mark of ports that have not toggled for a whole window.

    The mark is set when a change is recorded; a port that then settles makes
    no change at all, so the tick takes the mark off once FLAP_WINDOW has
    passed since its last change. Returns how many ports settled.
    """
    now = now or timezone.now()
    settled_before = now - timedelta(minutes=settings.FLAP_WINDOW_MINUTES)
    return Service.objects.filter(flapping=True, last_changed__lt=settled_before).update(flapping=False)
