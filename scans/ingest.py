"""Ingest: feed a scan's observations through the diff engine and write the result.

The caller holds the transaction (and the lock that makes a second ingest of
the same chunk a no-op). Two engines share one semantics:

- on PostgreSQL, ``scans.ingest_pg`` stages the observations with COPY and
  diffs them in set-based SQL (65k hosts in a few seconds);
- elsewhere (the embedded SQLite default), this module reads the known state
  of one bounded batch of hosts at a time, asks ``scans.diff`` (the pure
  specification) what changed, and writes with bulk ORM statements.

Either way memory is bounded, not proportional to the scan, and the changes
of a chunk are announced once, with ``changes_recorded``, inside the
transaction.
"""

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet

from inventory import assignment, policy
from inventory.choices import HostStatus, PortState
from inventory.models import Host, ProbedPortSet, Service, Zone
from scans import ingest_pg
from scans.choices import ChangeKind
from scans.diff import Coverage, DiffResult, KnownHost, KnownService, diff_hosts
from scans.merge import merge_duplicates
from scans.models import Change, ScanChunk, ScanRun
from scans.nmap_xml import HostObservation, NmapRunInfo, unique_hosts
from scans.signals import changes_recorded

logger = logging.getLogger(__name__)

BATCH_HOSTS = 500
# Below this many changes a chunk never triggers ANALYZE (see _refresh_statistics).
ANALYZE_MIN_CHANGES = 2000
STATE_CHANGES = (ChangeKind.PORT_OPENED, ChangeKind.PORT_CLOSED, ChangeKind.PORT_FILTERED, ChangeKind.PORT_RETURNED)


@dataclass
class IngestSummary:
    hosts_seen: int = 0
    hosts_up: int = 0
    changes: Counter = field(default_factory=Counter)

    @property
    def total_changes(self) -> int:
        return sum(self.changes.values())


def ingest(
    *,
    run: ScanRun,
    chunk: ScanChunk,
    zone: Zone,
    coverage: Coverage,
    observations: Iterable[HostObservation],
    now: datetime,
) -> IngestSummary:
    """Diff and write every observation, then the covered addresses that were silent.

    Must run inside ``transaction.atomic()``: an error part-way (a truncated
    file, say) rolls everything back. An incomplete coverage concludes nothing.

    Observations held in a list (a scan chunk's) are merged per address first
    (``scans.merge``); a stream raises ``HostListedTwice`` at an address it
    lists twice, for the caller to merge (``scans.imports``).
    """
    if not coverage.complete:
        return IngestSummary()
    if isinstance(observations, list | tuple):
        observations = merge_duplicates(observations, coverage.probed)
    if ingest_pg.is_available():
        with connection.cursor() as cursor:
            ingest_pg.create_staging(cursor)
            seen, up = ingest_pg.stage_observations(cursor, observations)
            counts = _apply_pg(cursor, run, chunk, zone, coverage=coverage, now=now)
            summary = IngestSummary(seen, up, counts)
            _settle(chunk, renamed_hosts=ingest_pg.renamed_hosts())
    else:
        summary = _ingest_in_batches(run, chunk, zone, coverage=coverage, observations=observations, now=now)
        _settle(chunk)
    _announce(run, chunk, summary)
    return summary


def ingest_file(
    *, run: ScanRun, chunk: ScanChunk, zone: Zone, path: str, now: datetime, observed_at: datetime
) -> tuple[IngestSummary, NmapRunInfo]:
    """Stage and diff an nmap XML file on PostgreSQL, parsing it in parallel.

    Each batch is settled (policy, host summaries, foreign keys) as soon as it
    is diffed, while the parser processes work on the next ones: left to the
    end, that work would run on one CPU after the parse is over.

    Raises NmapXmlError (and so rolls back) for a malformed or incomplete file.
    """
    info = NmapRunInfo()
    summary = IngestSummary()
    with connection.cursor() as cursor:
        for batch in ingest_pg.stage_file_batches(cursor, path, info):
            # The first batch holds nmap's <scaninfo>: the probed ports are known.
            coverage = Coverage(frozenset(), info.probed, complete=True, observed_at=observed_at)
            last_change = _last_change_id()
            summary.changes = _apply_pg(cursor, run, chunk, zone, coverage=coverage, now=now, keep_stats=True)
            summary.hosts_seen += batch.seen
            summary.hosts_up += batch.up
            _settle(chunk, after_change=last_change, renamed_hosts=ingest_pg.renamed_hosts())
            ingest_pg.check_deferred(cursor)
    _announce(run, chunk, summary)
    return summary, info


def _apply_pg(cursor, run, chunk, zone, *, coverage, now, keep_stats=False) -> Counter:
    """Diff the staged batch; return the chunk's change counts by kind."""
    ingest_pg.stage_coverage(cursor, coverage)
    ingest_pg.stage_silent(cursor, coverage.addresses)
    probed_set = ProbedPortSet.for_ports(coverage.probed) if coverage.probed else None
    counts = ingest_pg.apply_staged(
        cursor,
        run_id=run.pk,
        chunk_id=chunk.pk,
        zone_id=zone.pk,
        now=now,
        probed_set_id=probed_set.pk if probed_set else None,
        observed_at=coverage.observed_at,
        any_unconfirmed=bool(coverage.unconfirmed),
        keep_stats=keep_stats,
    )
    return counts


def _announce(run: ScanRun, chunk: ScanChunk, summary: IngestSummary) -> None:
    """Tell whoever listens (alerts) what the chunk changed, once its writes are settled."""
    if summary.total_changes:
        _refresh_statistics(summary.total_changes)
        changes_recorded.send(sender=Change, run=run, changes=Change.objects.filter(chunk=chunk))


def _last_change_id() -> int:
    """The newest change id: a batch's own changes come after it (ids only grow)."""
    return Change.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _refresh_statistics(changes: int) -> None:
    """ANALYZE the inventory after a scan that grew it by a large fraction.

    Until autovacuum gets to it, the planner would otherwise plan the next
    scan against statistics of a much smaller table, or of rows the policy has
    not evaluated yet (all "pending": the pending-rows index would look
    useless). ANALYZE counts this transaction's own rows; it costs a fraction
    of a second and runs only when the inventory grew by more than a quarter,
    after the policy step so that it sees the rows as they will stay.
    """
    if connection.vendor != "postgresql" or changes < ANALYZE_MIN_CHANGES:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'inventory_service'::regclass")
        (known,) = cursor.fetchone()
        if known < 4 * changes:
            cursor.execute("ANALYZE inventory_service, inventory_host, scans_change")


def _settle(chunk: ScanChunk, *, after_change: int = 0, renamed_hosts: QuerySet | None = None) -> None:
    """Bring what the inventory derives from ports up to date with a batch's writes.

    The batch's changes are the chunk's changes after ``after_change``.
    Newly discovered hosts get their assignment rules' tags and owner, the
    ports the diff engine left undecided (the batched engine inserts them
    so) get their rule, status and risk, and the hosts that changed get their
    summary recounted, with those whose ports were renamed without a change
    (``renamed_hosts``; their risk may differ), all before anyone is told
    (``changes_recorded``).
    """
    started = time.perf_counter()
    changes = Change.objects.filter(chunk=chunk, pk__gt=after_change)
    discovered = changes.filter(kind=ChangeKind.HOST_DISCOVERED)
    if discovered.exists():
        assignment.apply_to_hosts(Host.objects.filter(pk__in=discovered.values("host_id")))
    assigned = time.perf_counter()
    # Rows the diff engine left undecided (on new hosts, or any the batched
    # engine wrote) have a NULL status, found through a partial index: they
    # get rule, status and risk. Their hosts are recounted with those the
    # changes touched.
    pending = Service.objects.filter(policy_status__isnull=True).exclude(host_id__in=changes.values("host_id"))
    quiet_hosts = list(pending.values_list("host_id", flat=True).distinct())
    policy.evaluate(Service.objects.none())
    evaluated = time.perf_counter()
    touched = Q(pk__in=changes.values("host_id")) | Q(pk__in=quiet_hosts)
    # Only when there are any: an OR of two subqueries hides from the planner
    # how few hosts they name, and it recounts every service (230 ms a batch
    # of 16k hosts, against 90 ms).
    if renamed_hosts is not None and renamed_hosts.exists():
        touched |= Q(pk__in=renamed_hosts)
    policy.refresh_hosts(Host.objects.filter(touched))
    logger.debug(
        "policy: assignment %.1f ms, evaluate %.1f ms, host summaries %.1f ms",
        (assigned - started) * 1000,
        (evaluated - assigned) * 1000,
        (time.perf_counter() - evaluated) * 1000,
    )


# --- the batched engine (scans.diff + ORM) ----------------------------------------------


def _ingest_in_batches(run, chunk, zone, *, coverage, observations, now) -> IngestSummary:
    probed_set = ProbedPortSet.for_ports(coverage.probed) if coverage.probed else None
    writer = _BatchWriter(run, chunk, zone, coverage, now, probed_set)
    seen: set[str] = set()
    for batch in _batched(unique_hosts(observations), BATCH_HOSTS):
        seen.update(observation.address for observation in batch)
        writer.summary.hosts_seen += len(batch)
        writer.summary.hosts_up += sum(1 for observation in batch if observation.up)
        writer.apply(batch, [])
    silent = sorted(address for address in coverage.addresses if address not in seen)
    for batch in _batched(silent, BATCH_HOSTS):
        writer.apply([], batch)
    return writer.summary


@dataclass(frozen=True)
class _HostRow:
    """What the writer needs of a known host beyond what the diff sees."""

    id: int
    last_seen: datetime
    seen_ports: ProbedPortSet | None


@dataclass
class _BatchWriter:
    run: ScanRun
    chunk: ScanChunk
    zone: Zone
    coverage: Coverage
    now: datetime
    probed_set: ProbedPortSet | None
    summary: IngestSummary = field(default_factory=IngestSummary)

    def apply(self, observations: list[HostObservation], silent: list[str]) -> None:
        addresses = [observation.address for observation in observations] + silent
        known, rows = _load_known_rows(self.zone, addresses)
        result = diff_hosts(self.coverage, known, observations, silent)
        timed_out = {observation.address for observation in observations if observation.timed_out}
        host_ids = {address: row.id for address, row in rows.items()}
        host_ids.update(
            _write_hosts(self.zone, result, rows, now=self.now, probed_set=self.probed_set, timed_out=timed_out)
        )
        flapping = _flapping(result, host_ids, self.now)
        _write_services(result, host_ids, rows, self.now, flapping)
        changes = _write_changes(self.run, self.chunk, result, host_ids, now=self.now, flapping=flapping)
        self.summary.changes.update(change.kind for change in changes)


def load_known(zone: Zone, addresses: list[str]) -> tuple[dict[str, KnownHost], dict[str, int]]:
    """Known state of ``addresses`` for the diff, and their host ids."""
    known, rows = _load_known_rows(zone, addresses)
    return known, {address: row.id for address, row in rows.items()}


def _load_known_rows(zone: Zone, addresses: list[str]) -> tuple[dict[str, KnownHost], dict[str, _HostRow]]:
    hosts = Host.objects.filter(zone=zone, address__in=addresses).select_related("seen_ports")
    known: dict[str, KnownHost] = {}
    rows: dict[str, _HostRow] = {}
    by_id: dict[int, KnownHost] = {}
    for host in hosts:
        state = KnownHost(host.address, host.status, tuple(host.hostnames or ()), last_scanned=host.last_scanned)
        known[host.address] = state
        rows[host.address] = _HostRow(host.id, host.last_seen, host.seen_ports)
        by_id[host.id] = state
    if by_id:
        services = Service.objects.filter(host_id__in=list(by_id)).values_list(
            "host_id", "protocol", "port", "state", "name", "product", "version", "extrainfo", "identified", "stale",
            "scripts",
        )  # fmt: skip
        for host_id, protocol, port, *fields in services:
            by_id[host_id].services[(protocol, port)] = KnownService(protocol, port, *fields)
    return known, rows


def _previously_seen(service: Service, row: _HostRow | None) -> datetime:
    """When the port was last seen before this scan (see Service.seen_at)."""
    if (
        row is not None
        and service.state != PortState.CLOSED
        and row.seen_ports is not None
        and row.seen_ports.covers(service.protocol, service.port)
    ):
        return max(service.last_seen, row.last_seen)
    return service.last_seen


def _flapping(result: DiffResult, host_ids: dict[str, int], now: datetime) -> dict[tuple[int, str, int], bool]:
    """For each port that toggles now: does that make FLAP_THRESHOLD within FLAP_WINDOW?"""
    toggles = {
        (host_ids[change.address], change.protocol, change.port)
        for change in (*result.port_opened, *result.port_closed, *result.port_filtered, *result.port_returned)
    }
    if not toggles:
        return {}
    since = now - timedelta(minutes=settings.FLAP_WINDOW_MINUTES)
    recent = (
        Change.objects.filter(
            host_id__in={host_id for host_id, _, _ in toggles}, kind__in=STATE_CHANGES, created_at__gt=since
        )
        .values_list("host_id", "protocol", "port")
        .annotate(count=Count("id"))
    )
    counts = {(host_id, protocol, port): count for host_id, protocol, port, count in recent}
    return {key: counts.get(key, 0) + 1 >= settings.FLAP_THRESHOLD for key in toggles}


def _write_hosts(zone, result: DiffResult, rows: dict, *, now, probed_set, timed_out: set) -> dict[str, int]:
    new = [
        Host(
            zone=zone,
            address=update.address,
            hostnames=list(update.hostnames),
            status=HostStatus.UP,
            first_seen=now,
            last_seen=now,
            last_scanned=now,
            seen_ports=None if update.address in timed_out else probed_set,
        )
        for update in result.hosts
        if update.new
    ]
    created = Host.objects.bulk_create(new)
    existing = {update.address: update for update in result.hosts if not update.new}
    if existing:
        hosts = list(Host.objects.filter(id__in=[rows[address].id for address in existing]))
        moved = []
        for host in hosts:
            update = existing[host.address]
            host.status = update.status
            host.last_scanned = now
            if update.responded:
                new_set = None if host.address in timed_out else probed_set
                if host.seen_ports_id != (new_set.pk if new_set else None):
                    moved.append(host.address)
                host.last_seen = now
                host.hostnames = list(update.hostnames)
                host.seen_ports = new_set
                host.ports_sig = None  # only the SQL engine keeps signatures
        _keep_last_seen(moved, rows)
        Host.objects.bulk_update(hosts, ["status", "last_scanned", "last_seen", "hostnames", "seen_ports", "ports_sig"])
        went_silent = [host.id for host in hosts if not existing[host.address].responded]
        if went_silent:
            # A silent host's ports are kept as last seen, marked stale.
            Service.objects.filter(host_id__in=went_silent).exclude(state=PortState.CLOSED).update(stale=True)
    return {host.address: host.id for host in created}


def _keep_last_seen(addresses: list[str], rows: dict[str, _HostRow]) -> None:
    """Before a host's coverage changes, write down what it derived for its ports."""
    by_id = {rows[address].id: rows[address] for address in addresses}
    if not by_id:
        return
    services = list(Service.objects.filter(host_id__in=by_id).exclude(state=PortState.CLOSED))
    for service in services:
        service.last_seen = _previously_seen(service, by_id[service.host_id])
    Service.objects.bulk_update(services, ["last_seen"], batch_size=1000)


def _write_services(result: DiffResult, host_ids: dict[str, int], rows: dict, now: datetime, flapping: dict) -> None:
    new, existing = [], {}
    for update in result.services:
        key = (host_ids[update.address], update.protocol, update.port)
        if update.new:
            new.append(
                Service(
                    host_id=key[0],
                    protocol=update.protocol,
                    port=update.port,
                    state=update.state,
                    name=update.name,
                    product=update.product,
                    version=update.version,
                    extrainfo=update.extrainfo,
                    identified=update.identified,
                    scripts=update.scripts or {},
                    flapping=flapping.get(key, False),
                    first_seen=now,
                    last_seen=now,
                    last_changed=now,
                )
            )
        elif update.needs_write:
            existing[key] = update
    Service.objects.bulk_create(new)
    if not existing:
        return
    row_by_id = {row.id: row for row in rows.values()}
    services = [
        service
        for service in Service.objects.filter(host_id__in={host_id for host_id, _, _ in existing})
        if (service.host_id, service.protocol, service.port) in existing
    ]
    for service in services:
        key = (service.host_id, service.protocol, service.port)
        update = existing[key]
        previously = _previously_seen(service, row_by_id.get(service.host_id))
        service.state = update.state
        if service.name != update.name:
            service.policy_status = None  # another name may be another risk: see inventory.policy
        service.name = update.name
        service.product = update.product
        service.version = update.version
        service.extrainfo = update.extrainfo
        service.identified = update.identified
        if update.scripts is not None:
            service.scripts = update.scripts
        service.stale = False
        # A closed port was last seen when it was last seen open.
        service.last_seen = now if update.state != PortState.CLOSED else previously
        if update.changed:
            service.last_changed = now
        service.flapping = flapping.get(key, service.flapping)
    Service.objects.bulk_update(
        services,
        [
            "state",
            "name",
            "product",
            "version",
            "extrainfo",
            "identified",
            "scripts",
            "stale",
            "last_seen",
            "last_changed",
            "flapping",
            "policy_status",
        ],
        batch_size=1000,
    )


def _write_changes(
    run, chunk, result: DiffResult, host_ids: dict[str, int], *, now: datetime, flapping
) -> list[Change]:
    changes = []
    for record in result.changes():
        host_id = host_ids[record.address]
        changes.append(
            Change(
                run=run,
                chunk=chunk,
                host_id=host_id,
                kind=record.kind,
                protocol=record.protocol,
                port=record.port,
                before=record.before,
                after=record.after,
                flapping=record.kind in STATE_CHANGES and flapping.get((host_id, record.protocol, record.port), False),
                created_at=now,
            )
        )
    return Change.objects.bulk_create(changes, batch_size=1000)


def _batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
