"""The ORM engine: the pure diff over bounded batches of hosts, written with bulk ORM statements.

The engine of the embedded SQLite default (and of PostgreSQL with
INGEST_SQL_ENGINE=0): for each batch of BATCH_HOSTS hosts it reads the known
state (``load_known``, which the confirmation re-probe uses too), asks
``diff.diff_hosts`` (the specification) what changed, and writes hosts,
services and changes in a few bulk statements. Memory is bounded by the
batch, not the scan. Ports are written undecided (NULL policy status), for
``settle`` to decide once the whole scan is written.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

from django.conf import settings
from django.db.models import Count

from inventory.choices import HostStatus, PortState
from inventory.models import Host, ProbedPortSet, Service, Zone
from scans.choices import STATE_CHANGE_KINDS
from scans.ingest.diff import Coverage, DiffResult, KnownHost, KnownService, diff_hosts
from scans.ingest.engine import Destination, Written
from scans.models import Change, ScanChunk, ScanRun
from scans.nmap_xml import HostObservation, NmapRunInfo, NmapXmlReader, unique_hosts

BATCH_HOSTS = 500


class OrmEngine:
    """The batched engine: ``diff.diff_hosts`` over BATCH_HOSTS hosts at a time, written with the ORM."""

    def write(self, to: Destination, coverage: Coverage, observations: Iterable[HostObservation]) -> Iterator[Written]:
        probed_set = ProbedPortSet.for_ports(coverage.probed) if coverage.probed else None
        writer = _BatchWriter(to.run, to.chunk, to.zone, coverage, to.now, probed_set)
        seen: set[str] = set()
        for batch in batched(unique_hosts(observations), BATCH_HOSTS):
            seen.update(observation.address for observation in batch)
            writer.written.seen += len(batch)
            writer.written.up += sum(1 for observation in batch if observation.up)
            writer.apply(batch, [])
        silent = sorted(address for address in coverage.addresses if address not in seen)
        for batch in batched(silent, BATCH_HOSTS):
            writer.apply([], batch)
        # Settled once, at the end: the rows it wrote undecided are found by their NULL status.
        yield writer.written

    def write_file(self, to: Destination, path: str, info: NmapRunInfo, observed_at: datetime) -> Iterator[Written]:
        """Streamed through the same reader as an upload, in this process."""
        with open(path, "rb") as source:
            reader = NmapXmlReader(source, info)
            coverage = Coverage(frozenset(), info.probed, complete=True, observed_at=observed_at)
            yield from self.write(to, coverage, reader.hosts())


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
    written: Written = field(default_factory=lambda: Written(0, 0))

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
        self.written.changes.update(change.kind for change in changes)


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
            host_id__in={host_id for host_id, _, _ in toggles}, kind__in=STATE_CHANGE_KINDS, created_at__gt=since
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
                vantage_id=run.vantage_id,
                chunk=chunk,
                host_id=host_id,
                kind=record.kind,
                protocol=record.protocol,
                port=record.port,
                before=record.before,
                after=record.after,
                flapping=record.kind in STATE_CHANGE_KINDS
                and flapping.get((host_id, record.protocol, record.port), False),
                created_at=now,
            )
        )
    return Change.objects.bulk_create(changes, batch_size=1000)


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Lists of ``size`` items (the last shorter): itertools.batched, which Python 3.11 lacks."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
