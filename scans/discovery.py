"""Fast discovery: masscan sweeps, nmap confirms, in one run.

A fast-discovery run (a profile of kind ``fast_discovery``) is planned into
*sweep* chunks (``MASSCAN_CHUNK_SIZE`` addresses each). A sweep chunk runs
masscan where nmap would run (the worker's machine or namespace): first,
unless the profile sweeps every address, a host discovery (ICMP echo and a
SYN to 80 and 443, where a reset counts as an answer), then every port of
the run over the addresses that answered. Its completion queues *confirm*
chunks, ordinary nmap chunks over the hosts and ports masscan found open and
nothing else, in the same transaction that marks the sweep done, so a sweep
is recorded once however often its task is delivered, and a sweep killed
before that commit leaves nothing behind and is tried again.

What it concludes: nothing from masscan. The sweep writes no host and no
port; only the confirm chunks' nmap output reaches the diff, with nmap's own
coverage (the ports it probed on the hosts it was given). So a port is
closed only when nmap probed it, a host masscan did not hear is not marked
down, and a sweep that found nothing changes nothing.
"""

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from inventory.choices import Protocol
from scans import confirm, failures, queueing
from scans.choices import AttemptOutcome, ChunkStatus, ChunkStep, ScopeAction
from scans.masscan_list import MasscanListError, SweepFinds, read_list
from scans.masscan_runner import run_masscan
from scans.models import ChunkAttempt, ScanChunk, ScanRun, ScopeRule
from scans.profiles import clamp_rate
from scans.scope import Scope, ScopeError
from scans.targets import summarize

logger = logging.getLogger(__name__)


class SweepRefused(ScopeError):
    """A fast-discovery run that must not start (a ScopeError: every caller shows it as a refusal)."""


def check_vantage(vantage) -> None:
    """Refuse fast discovery from a remote vantage point: its scanner is given
    orders checked against nmap's option table, and runs nmap only."""
    if vantage is not None and vantage.remote:
        raise SweepRefused(
            f"fast discovery runs masscan on a central or zone worker; vantage point “{vantage.name}” "
            "is scanned by a remote scanner, which runs nmap only. Choose an nmap profile for it."
        )


@dataclass(frozen=True)
class Swept:
    """How a sweep attempt ended when it did not complete (completion is written by ``complete_sweep``)."""

    stopped: bool = False
    failure: failures.Failure | None = None


def sweep(chunk: ScanChunk, addresses: list, workdir: Path, should_stop) -> Swept:
    """Run the chunk's sweep over ``addresses`` (resolved, in scope) and record what it found."""
    run = chunk.run
    scope = Scope.current()
    # Checked again now: never started against an address the scope no longer allows.
    addresses = [address for address in addresses if scope.refusal(address) is None]
    swept = {str(address) for address in addresses}
    targets = summarize(addresses)
    exclude = _exclusions(targets)
    answered = None
    if not addresses:
        complete_sweep(chunk, {}, addresses=0, answered=None)
        return Swept()
    options = {step: within_ceiling(words) for step, words in run.masscan_options.items()}
    if options.get("discovery"):
        result = run_masscan(
            options["discovery"], targets, workdir, exclude=exclude, name="discovery", should_stop=should_stop
        )
        heard, failed = _read(result)
        if failed is not None:
            return failed
        live = sorted(heard.only(swept).answered, key=ipaddress.ip_address)
        answered = len(live)
        if not live:
            complete_sweep(chunk, {}, addresses=len(swept), answered=0)
            return Swept()
        targets, swept = live, set(live)
    result = run_masscan(options["sweep"], targets, workdir, exclude=exclude, name="sweep", should_stop=should_stop)
    finds, failed = _read(result)
    if failed is not None:
        return failed
    complete_sweep(chunk, finds.only(swept).open_ports, addresses=len(addresses), answered=answered)
    return Swept()


def within_ceiling(options: list[str]) -> list[str]:
    """A run's frozen masscan options with the rate clamped to MASSCAN_MAX_RATE as it is now:
    a ceiling lowered after the run was queued holds for its sweeps too."""
    words = list(options)
    for index, word in enumerate(words[:-1]):
        if word == "--rate":
            words[index + 1] = str(clamp_rate(words[index + 1], settings.MASSCAN_MAX_RATE))
    return words


def _read(result) -> tuple[SweepFinds | None, Swept | None]:
    if result.stopped:
        return None, Swept(stopped=True)
    if not result.ok:
        return None, Swept(failure=failures.masscan_exit(result.returncode, result.stderr))
    try:
        with open(result.output_path, encoding="ascii", errors="replace") as output:
            return read_list(output), None
    except FileNotFoundError:
        return None, Swept(failure=failures.Failure(f"masscan wrote no output: {result.stderr[-500:]}", False))
    except MasscanListError as error:
        return None, Swept(failure=failures.Failure(f"masscan's output is unreadable: {error}", False))


def _exclusions(targets: list[str]) -> list[str]:
    """The scope's exclusions that touch the targets: masscan is told them too, whatever planned the targets."""
    networks = [ipaddress.ip_network(target) for target in targets]
    excluded = []
    for rule in ScopeRule.objects.filter(action=ScopeAction.EXCLUDE).order_by("network"):
        network = ipaddress.ip_network(rule.network)
        if any(network.version == target.version and network.overlaps(target) for target in networks):
            excluded.append(str(network))
    return excluded


def plan_confirm(open_ports: dict[str, set[int]]) -> list[tuple[list[str], str]]:
    """The confirm chunks for what a sweep found: (hosts, ports), at most SCAN_CHUNK_SIZE hosts each.

    Hosts are packed with the re-probe's planner: nmap probes every port of
    a chunk on every host of it, so hosts with the same finds share a chunk and
    the extra probes stay bounded. Those extra probes are real nmap probes:
    the chunk's coverage says so, and only they, with the finds, may conclude.
    """
    keys = [(address, Protocol.TCP, port) for address, ports in open_ports.items() for port in ports]
    planned = []
    for hosts, ports in confirm.plan_runs(keys):
        ordered = sorted(hosts, key=ipaddress.ip_address)
        for start in range(0, len(ordered), settings.SCAN_CHUNK_SIZE):
            planned.append((ordered[start : start + settings.SCAN_CHUNK_SIZE], str(ports)))
    return planned


def complete_sweep(chunk: ScanChunk, open_ports: dict[str, set[int]], *, addresses: int, answered: int | None) -> bool:
    """Mark the sweep done and queue its confirm chunks, once: False if this attempt no longer owns it.

    Under the run's row lock, so a cancel either comes first (and no confirm
    chunk is queued) or cancels the ones queued here.
    """
    now = timezone.now()
    planned = plan_confirm(open_ports)
    with transaction.atomic():
        run = ScanRun.objects.select_for_update().get(pk=chunk.run_id)
        locked = (
            ScanChunk.objects.select_for_update()
            .filter(pk=chunk.pk, status=ChunkStatus.RUNNING, attempts=chunk.attempts, ingested_at__isnull=True)
            .first()
        )
        if locked is None:
            return False  # cancelled, done already, or taken over by another attempt
        cancelled = run.cancel_requested
        if cancelled:
            planned = []
        first = (run.chunks.aggregate(last=Max("index"))["last"] or 0) + 1
        created = ScanChunk.objects.bulk_create(
            ScanChunk(
                run=run,
                index=first + offset,
                step=ChunkStep.CONFIRM,
                targets=hosts,
                addresses=hosts,
                ports=ports,
                size=len(hosts),
            )
            for offset, (hosts, ports) in enumerate(planned)
        )
        locked.status = ChunkStatus.CANCELLED if cancelled else ChunkStatus.SUCCEEDED
        locked.error = "The run was cancelled; the sweep's finds were not confirmed." if cancelled else ""
        locked.ingested_at = now
        locked.finished_at = now
        locked.found = {
            "addresses": addresses,
            "answered": answered,
            "hosts": len(open_ports),
            "ports": sum(len(ports) for ports in open_ports.values()),
            "swept_ports": run.masscan_options["sweep"][1],
        }
        locked.save(update_fields=["status", "error", "ingested_at", "finished_at", "found"])
        ChunkAttempt.objects.filter(chunk=locked, number=locked.attempts, finished_at__isnull=True).update(
            outcome=AttemptOutcome.CANCELLED if cancelled else AttemptOutcome.SUCCEEDED, finished_at=now
        )
        ScanRun.objects.filter(pk=run.pk).update(
            hosts_done=F("hosts_done") + locked.size,
            hosts_total=F("hosts_total") + sum(len(hosts) for hosts, _ in planned),
        )
        if created:
            queueing.send_on_commit(run, [confirm_chunk.pk for confirm_chunk in created])
    logger.info(
        "sweep chunk %s: %s address(es), %s answered, %d open port(s) on %d host(s), %d confirm chunk(s)",
        chunk.pk,
        addresses,
        "all" if answered is None else answered,
        locked.found["ports"],
        len(open_ports),
        len(created),
    )
    return True
