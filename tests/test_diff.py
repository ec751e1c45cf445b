"""The diff engine, row by row of DESIGN.md's semantics table (pure, no database)."""

from inventory.choices import HostStatus, PortState
from inventory.ports import PortSet
from scans.choices import ChangeKind
from scans.ingest.diff import Coverage, KnownHost, KnownService, diff_hosts
from scans.nmap_xml import HostObservation, PortObservation

A = "127.77.0.1"
TCP = "tcp"
PROBED_1_1000 = {TCP: PortSet.parse("1-1000")}
ALL_CLOSED = ((TCP, PortState.CLOSED, PortSet.parse("1-1000")),)


def coverage(probed=PROBED_1_1000, complete=True, addresses=(A,)):
    return Coverage(frozenset(addresses), probed, complete)


def known(*services, status=HostStatus.UP):
    return {A: KnownHost(A, status, (), {(s.protocol, s.port): s for s in services})}


def open_service(port, **fields):
    return KnownService(TCP, port, PortState.OPEN, **fields)


def up(*ports, other=None, timed_out=False):
    listed = {port.port for port in ports}
    if other is None:
        other = ((TCP, PortState.CLOSED, PortSet([(p, p) for p in range(1, 1001) if p not in listed])),)
    return HostObservation(A, True, (), tuple(ports), other, timed_out=timed_out)


def port(number, state=PortState.OPEN, **fields):
    return PortObservation(TCP, number, state, **fields)


def kinds(result):
    return sorted((change.kind, change.port) for change in result.changes())


def test_probed_open_port_that_was_unknown_is_opened():
    result = diff_hosts(coverage(), known(), [up(port(22))])
    assert kinds(result) == [(ChangeKind.PORT_OPENED, 22)]


def test_probed_open_port_that_was_closed_is_opened():
    result = diff_hosts(coverage(), known(KnownService(TCP, 22, PortState.CLOSED)), [up(port(22))])
    assert kinds(result) == [(ChangeKind.PORT_OPENED, 22)]
    assert result.port_opened[0].before["state"] == PortState.CLOSED


def test_probed_closed_port_that_was_open_is_closed():
    result = diff_hosts(coverage(), known(open_service(22)), [up()])
    assert kinds(result) == [(ChangeKind.PORT_CLOSED, 22)]


def test_probed_filtered_port_that_was_open_is_filtered_not_closed():
    observation = up(other=((TCP, PortState.FILTERED, PortSet.parse("1-1000")),))
    result = diff_hosts(coverage(), known(open_service(22)), [observation])
    assert kinds(result) == [(ChangeKind.PORT_FILTERED, 22)]


def test_open_port_outside_the_probed_set_is_not_observed():
    result = diff_hosts(coverage(), known(open_service(8443)), [up(port(22))])
    assert kinds(result) == [(ChangeKind.PORT_OPENED, 22)]
    assert not result.port_closed


def test_silent_host_after_a_completed_scan_is_unreachable_and_its_ports_are_kept():
    result = diff_hosts(coverage(), known(open_service(22), open_service(80)), [], silent=[A])
    assert kinds(result) == [(ChangeKind.HOST_UNREACHABLE, None)]
    assert not result.services  # ports stay as they were
    assert result.hosts[0].status == HostStatus.UNREACHABLE


def test_host_reported_down_is_unreachable_too():
    result = diff_hosts(coverage(), known(open_service(22)), [HostObservation(A, False)])
    assert kinds(result) == [(ChangeKind.HOST_UNREACHABLE, None)]


def test_unreachable_host_that_stays_silent_produces_nothing():
    result = diff_hosts(coverage(), known(open_service(22), status=HostStatus.UNREACHABLE), [], silent=[A])
    assert kinds(result) == []


def test_host_that_answers_again_returns_then_its_ports_are_diffed():
    before = known(open_service(22), open_service(80), status=HostStatus.UNREACHABLE)
    result = diff_hosts(coverage(), before, [up(port(22))])
    assert kinds(result) == [(ChangeKind.HOST_RETURNED, None), (ChangeKind.PORT_CLOSED, 80)]


def test_new_address_is_discovered_with_each_open_port():
    result = diff_hosts(coverage(), {}, [up(port(22), port(80), port(81, PortState.FILTERED))])
    assert kinds(result) == [
        (ChangeKind.HOST_DISCOVERED, None),
        (ChangeKind.PORT_OPENED, 22),
        (ChangeKind.PORT_OPENED, 80),
    ]


def test_silent_address_never_seen_is_not_inventory():
    result = diff_hosts(coverage(), {}, [], silent=[A])
    assert kinds(result) == [] and not result.hosts


def test_incomplete_scan_concludes_nothing():
    result = diff_hosts(coverage(complete=False), known(open_service(22)), [up()], silent=[A])
    assert kinds(result) == [] and not result.hosts and not result.services


def test_identified_service_that_differs_is_a_service_change():
    was = open_service(22, name="ssh", product="OpenSSH", version="8.4", identified=True)
    now = port(22, name="ssh", product="OpenSSH", version="9.2", identified=True)
    result = diff_hosts(coverage(), known(was), [up(now)])
    assert kinds(result) == [(ChangeKind.SERVICE_CHANGED, 22)]
    assert result.service_changed[0].before["version"] == "8.4"
    assert result.service_changed[0].after["version"] == "9.2"


def test_a_guess_by_port_number_never_overwrites_an_identification():
    was = open_service(22, name="ssh", product="OpenSSH", version="9.2", identified=True)
    guess = port(22, name="ssh")
    result = diff_hosts(coverage(), known(was), [up(guess)])
    assert kinds(result) == []
    [service] = result.services
    assert (service.product, service.version, service.identified) == ("OpenSSH", "9.2", True)


def test_first_identification_is_an_enrichment_not_a_change():
    result = diff_hosts(
        coverage(), known(open_service(22, name="ssh")), [up(port(22, name="ssh", product="OpenSSH", identified=True))]
    )
    assert kinds(result) == []
    assert result.services[0].product == "OpenSSH"


def test_unlisted_ports_of_unknown_state_are_not_observed():
    # Two summaries without port lists: nmap does not say which port is which.
    observation = up(other=())
    result = diff_hosts(coverage(), known(open_service(22)), [observation])
    assert kinds(result) == []


def test_timed_out_host_can_open_ports_but_never_close_them():
    result = diff_hosts(coverage(), known(open_service(80)), [up(port(22), timed_out=True)])
    assert kinds(result) == [(ChangeKind.PORT_OPENED, 22)]


def test_unchanged_scan_changes_nothing():
    result = diff_hosts(coverage(), known(open_service(22, name="ssh")), [up(port(22, name="ssh"))])
    assert kinds(result) == []
    assert [s.changed for s in result.services] == [False]
