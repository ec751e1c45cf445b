"""The diff engine: what a scan really observed, compared with what is known.

Pure functions: coverage and observations in, named buckets out. Nothing here
reads or writes the database (the engines do both around it), so every
row of the semantics table in DESIGN.md is a plain test.

The rule behind every line: a change is only as strong as the coverage behind
it. Positive evidence (a port answered) can open a port on any scan that saw
it; negative evidence (closed, filtered, no answer) only counts for ports the
scan probed, on hosts that answered, in a scan that completed.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from inventory.choices import HostStatus, PortState
from inventory.ports import PortSet
from scans.choices import ChangeKind
from scans.nmap_xml import HostObservation, PortObservation


@dataclass(frozen=True)
class Coverage:
    """What a chunk (or an imported file) really looked at."""

    # Addresses the scan was aimed at; those that did not answer are silent.
    addresses: frozenset[str]
    # Protocol -> the exact ports probed on every answering host.
    probed: Mapping[str, PortSet]
    # False when nmap failed, timed out or was cancelled: nothing is concluded.
    complete: bool
    # (address, protocol, port) a confirmation re-probe contradicted: not observed.
    unconfirmed: frozenset[tuple[str, str, int]] = frozenset()
    # When the observations were made; a host scanned more recently than that
    # (an old file imported late) keeps its newer state.
    observed_at: datetime | None = None


@dataclass
class KnownService:
    protocol: str
    port: int
    state: str
    name: str = ""
    product: str = ""
    version: str = ""
    extrainfo: str = ""
    identified: bool = False
    stale: bool = False
    scripts: dict | None = None


@dataclass
class KnownHost:
    address: str
    status: str
    hostnames: tuple[str, ...] = ()
    services: dict[tuple[str, int], KnownService] = field(default_factory=dict)
    last_scanned: datetime | None = None


@dataclass(frozen=True)
class ChangeRecord:
    address: str
    kind: str
    protocol: str = ""
    port: int | None = None
    before: dict | None = None
    after: dict | None = None


@dataclass(frozen=True)
class HostUpdate:
    """The host row after this scan. ``responded`` is False for a silent host."""

    address: str
    status: str
    responded: bool
    hostnames: tuple[str, ...] = ()
    new: bool = False


@dataclass(frozen=True)
class ServiceUpdate:
    """A service as this scan leaves it: its new state, whether the state
    changed, and whether the row needs writing at all (a port seen again,
    unchanged, does not: its "last seen" follows the host's, see
    ``inventory.models.Service.seen_at``)."""

    address: str
    protocol: str
    port: int
    state: str
    name: str
    product: str
    version: str
    extrainfo: str
    identified: bool
    changed: bool
    new: bool
    # None: the scan ran no scripts on the port, keep what is known.
    scripts: dict | None = None
    needs_write: bool = True


@dataclass
class DiffResult:
    """Named buckets of changes, plus the inventory rows that follow from them."""

    host_discovered: list[ChangeRecord] = field(default_factory=list)
    host_returned: list[ChangeRecord] = field(default_factory=list)
    host_unreachable: list[ChangeRecord] = field(default_factory=list)
    port_opened: list[ChangeRecord] = field(default_factory=list)
    port_closed: list[ChangeRecord] = field(default_factory=list)
    port_filtered: list[ChangeRecord] = field(default_factory=list)
    port_returned: list[ChangeRecord] = field(default_factory=list)
    service_changed: list[ChangeRecord] = field(default_factory=list)
    hosts: list[HostUpdate] = field(default_factory=list)
    services: list[ServiceUpdate] = field(default_factory=list)

    def changes(self) -> list[ChangeRecord]:
        return [
            *self.host_discovered,
            *self.host_returned,
            *self.host_unreachable,
            *self.port_opened,
            *self.port_closed,
            *self.port_filtered,
            *self.port_returned,
            *self.service_changed,
        ]

    def counts(self) -> dict[str, int]:
        return {kind.value: len(getattr(self, kind.value)) for kind in ChangeKind if hasattr(self, kind.value)}

    def _record(self, change: ChangeRecord) -> None:
        getattr(self, change.kind).append(change)


def diff_hosts(
    coverage: Coverage,
    known: Mapping[str, KnownHost],
    observations: Iterable[HostObservation],
    silent: Iterable[str] = (),
) -> DiffResult:
    """Compare one batch of a scan with the inventory.

    ``observations`` are the hosts nmap reported; ``silent`` the covered
    addresses it did not report at all (nmap leaves hosts that did not answer
    out of its XML). ``known`` maps address -> KnownHost for every address of
    the batch that is already in the inventory.
    """
    result = DiffResult()
    if not coverage.complete:
        return result
    for observation in observations:
        host = known.get(observation.address)
        if _newer_than(host, coverage):
            continue
        if observation.up:
            _diff_responding_host(result, coverage, host, observation)
        else:
            _diff_silent_host(result, host, observation.address)
    for address in silent:
        if not _newer_than(known.get(address), coverage):
            _diff_silent_host(result, known.get(address), address)
    return result


def _newer_than(host: KnownHost | None, coverage: Coverage) -> bool:
    """Older observations never override newer ones."""
    return (
        host is not None
        and host.last_scanned is not None
        and coverage.observed_at is not None
        and host.last_scanned > coverage.observed_at
    )


def _diff_silent_host(result: DiffResult, host: KnownHost | None, address: str) -> None:
    if host is None:
        return  # never seen answering: nothing to say about it
    result.hosts.append(HostUpdate(address, HostStatus.UNREACHABLE, responded=False, hostnames=host.hostnames))
    if host.status == HostStatus.UP:
        # Its ports stay as they were (marked stale by the writer): a host
        # that did not answer says nothing about its ports.
        result._record(
            ChangeRecord(
                address,
                ChangeKind.HOST_UNREACHABLE,
                before={"status": host.status},
                after={"status": HostStatus.UNREACHABLE},
            )
        )


def _diff_responding_host(
    result: DiffResult, coverage: Coverage, host: KnownHost | None, observation: HostObservation
) -> None:
    address = observation.address
    hostnames = observation.hostnames or (host.hostnames if host else ())
    if host is None:
        result._record(
            ChangeRecord(
                address, ChangeKind.HOST_DISCOVERED, after={"status": HostStatus.UP, "hostnames": list(hostnames)}
            )
        )
        host = KnownHost(address, HostStatus.UP)
        new_host = True
    else:
        new_host = False
        if host.status == HostStatus.UNREACHABLE:
            result._record(
                ChangeRecord(
                    address, ChangeKind.HOST_RETURNED, before={"status": host.status}, after={"status": HostStatus.UP}
                )
            )
    result.hosts.append(HostUpdate(address, HostStatus.UP, responded=True, hostnames=hostnames, new=new_host))

    listed = {(port.protocol, port.port): port for port in observation.ports}
    for key, port in listed.items():
        if port.state != PortState.OPEN and observation.timed_out:
            continue
        if (address, *key) in coverage.unconfirmed:
            continue
        _diff_port(result, address, host.services.get(key), port.state, port=port, timed_out=observation.timed_out)
    if observation.timed_out:
        # nmap gave up on this host part-way: what it found open is true, what
        # it did not find says nothing.
        return
    # Known ports nmap did not list: their state is whatever nmap says about
    # the unlisted probed ports, if it says anything.
    for key, service in host.services.items():
        if key in listed or (address, *key) in coverage.unconfirmed:
            continue
        state = _unlisted_state(coverage, observation, *key)
        if state is not None:
            _diff_port(result, address, service, state, port=None, timed_out=False)


def _unlisted_state(coverage: Coverage, observation: HostObservation, protocol: str, port: int) -> str | None:
    probed = coverage.probed.get(protocol)
    if probed is None or port not in probed:
        return None  # not in the probed port set: not observed
    for other_protocol, state, ports in observation.other_ports:
        if other_protocol == "*" or (other_protocol == protocol and port in ports):
            return state
    return None  # nmap did not say which state it is in: not observed


def _diff_port(
    result: DiffResult,
    address: str,
    service: KnownService | None,
    state: str,
    *,
    port: PortObservation | None,
    timed_out: bool,
) -> None:
    if service is None and state != PortState.OPEN:
        return  # a closed or filtered port never seen open is not inventory
    if service is not None and service.state == PortState.CLOSED and state != PortState.OPEN:
        # Still closed, or no answer where a closed port answered before: no
        # answer says nothing new about a port that was closed. So the
        # inventory's "filtered" always means "open, then no answer".
        return
    update = _service_update(address, state, service, port, timed_out)
    result.services.append(update)
    kind = _port_change_kind(service, update)
    if kind is not None:
        before = _snapshot_known(service) if service else None
        result._record(ChangeRecord(address, kind, update.protocol, update.port, before, _snapshot(update)))


def _port_change_kind(service: KnownService | None, update: ServiceUpdate) -> str | None:
    if update.state == PortState.OPEN:
        if service is not None and service.state == PortState.FILTERED:
            return ChangeKind.PORT_RETURNED  # open before it was filtered: not a new port
        if service is None or service.state != PortState.OPEN:
            return ChangeKind.PORT_OPENED
        return ChangeKind.SERVICE_CHANGED if _service_differs(service, update) else None
    if service.state == PortState.OPEN:
        return ChangeKind.PORT_CLOSED if update.state == PortState.CLOSED else ChangeKind.PORT_FILTERED
    return None  # filtered -> closed: the state is kept, nobody is alerted


def _service_update(
    address: str, state: str, service: KnownService | None, port: PortObservation | None, timed_out: bool
) -> ServiceUpdate:
    """Merge what was observed into what was known.

    Without version detection nmap names a service from its port number (a
    guess); such a guess never overwrites an identified service, and a first
    identification is an enrichment, not a change.
    """
    protocol, number = (port.protocol, port.port) if port else (service.protocol, service.port)
    scripts = dict(port.scripts) if port and port.scripts else None
    identified = bool(port and port.identified)
    if service is not None and service.identified and not identified:
        name, product, version, extrainfo = service.name, service.product, service.version, service.extrainfo
        identified = True
    elif port is not None:
        name, product, version, extrainfo = port.name, port.product, port.version, port.extrainfo
    else:
        name, product, version, extrainfo = service.name, service.product, service.version, service.extrainfo
    return ServiceUpdate(
        address,
        protocol,
        number,
        state,
        name,
        product,
        version,
        extrainfo,
        identified=identified,
        changed=service is None or state != service.state,
        new=service is None,
        scripts=scripts,
        needs_write=(
            service is None
            or state != service.state
            or service.stale
            # a host nmap gave up on keeps no derived "last seen": write it
            or timed_out
            or (name, product, version, extrainfo, identified)
            != (service.name, service.product, service.version, service.extrainfo, service.identified)
            or (scripts is not None and scripts != service.scripts)
        ),
    )


def _service_differs(service: KnownService, update: ServiceUpdate) -> bool:
    if not (service.identified and update.identified):
        return False
    return (service.name, service.product, service.version) != (update.name, update.product, update.version)


def _snapshot(update: ServiceUpdate) -> dict:
    return {"state": update.state, "name": update.name, "product": update.product, "version": update.version}


def _snapshot_known(service: KnownService) -> dict:
    return {"state": service.state, "name": service.name, "product": service.product, "version": service.version}
