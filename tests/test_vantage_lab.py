"""The vantage lab (tests/vantage_lab.py) with the real nmap: one host:port,
seen differently from two scanner locations, and nothing left behind."""

import io
import subprocess
from pathlib import Path

import pytest

from scans.nmap_xml import HostObservation, NmapXmlReader
from tests import vantage_lab as vantage_lab_module
from tests.netns import _run, netns_unavailable_reason
from tests.vantage_lab import VantageLab

pytestmark = [pytest.mark.netns]

DC1, OFFICE = "dc1-app", "office-lan"
FAST = ("-n", "-T5", "--max-retries", "1", "--host-timeout", "15s")


def scan(lab: VantageLab, vantage: str, targets: list[str], *options: str) -> dict[str, HostObservation]:
    """nmap from that vantage point, through its wrapper, on the lab's own hosts only: address -> host."""
    assert set(targets) <= set(lab.addresses), targets
    result = subprocess.run(
        [str(lab.nmap_path(vantage)), *FAST, *options, "-oX", "-", *targets],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    return {host.address: host for host in NmapXmlReader(io.BytesIO(result.stdout)).hosts()}


def port_states(lab: VantageLab, vantage: str, host: str, ports: list[int]) -> dict[int, str]:
    """A SYN scan of the ports, host discovery skipped: port -> state."""
    found = scan(lab, vantage, [host], "-sS", "-Pn", "-p", ",".join(map(str, ports)))
    return {port.port: port.state for port in found[host].ports}


def status(lab: VantageLab, vantage: str) -> dict[str, bool]:
    """A port scan of every lab host with nmap's host discovery (no -Pn): address -> up.

    ``-v`` lists the hosts found down in the XML too.
    """
    found = scan(lab, vantage, lab.addresses, "-sS", "-v", "-p", "41022")
    assert set(found) == set(lab.addresses)
    return {address: host.up for address, host in found.items()}


def namespaces() -> str:
    return _run("ip", "netns", "list").stdout


def test_the_same_port_is_open_from_one_vantage_point_and_filtered_from_the_other(vantage_lab):
    h2 = vantage_lab.addresses[0]
    vantage_lab.listen(h2, 41022, 41080)
    assert port_states(vantage_lab, DC1, h2, [41022, 41080]) == {41022: "open", 41080: "open"}

    # A segmentation violation fixed: office-lan must not reach 41022.
    vantage_lab.drop(41022, host=h2, from_vantage=OFFICE)

    assert port_states(vantage_lab, OFFICE, h2, [41022, 41080]) == {41022: "filtered", 41080: "open"}
    assert port_states(vantage_lab, DC1, h2, [41022, 41080]) == {41022: "open", 41080: "open"}

    vantage_lab.allow(41022, host=h2, from_vantage=OFFICE)

    assert vantage_lab.rules == []
    for vantage in (DC1, OFFICE):
        assert port_states(vantage_lab, vantage, h2, [41022, 41080]) == {41022: "open", 41080: "open"}


def test_a_host_is_down_from_one_vantage_point_and_up_from_the_other(vantage_lab):
    h2, h3, h4 = vantage_lab.addresses
    vantage_lab.listen(h3, 41022)

    vantage_lab.unreachable(h3, from_vantage=OFFICE)

    assert status(vantage_lab, OFFICE) == {h2: True, h3: False, h4: True}
    assert status(vantage_lab, DC1) == {h2: True, h3: True, h4: True}
    assert port_states(vantage_lab, DC1, h3, [41022]) == {41022: "open"}

    vantage_lab.reachable(h3, from_vantage=OFFICE)

    assert status(vantage_lab, OFFICE) == {h2: True, h3: True, h4: True}


def test_restore_lifts_every_rule(vantage_lab):
    h2, h3, _ = vantage_lab.addresses
    vantage_lab.listen(h2, 41022)
    vantage_lab.drop(41022, host=0, from_vantage=DC1)
    vantage_lab.drop(41022, host=h2, from_vantage=OFFICE)
    vantage_lab.unreachable(h3, from_vantage=OFFICE)
    assert port_states(vantage_lab, DC1, h2, [41022]) == {41022: "filtered"}

    vantage_lab.restore()

    assert vantage_lab.rules == []
    for vantage in (DC1, OFFICE):
        assert port_states(vantage_lab, vantage, h2, [41022]) == {41022: "open"}
        assert all(status(vantage_lab, vantage).values())


def test_rules_name_only_the_labs_hosts_and_vantage_points(vantage_lab):
    with pytest.raises(ValueError, match="not one of this lab's hosts"):
        vantage_lab.drop(22, host="198.18.200.9", from_vantage=OFFICE)
    with pytest.raises(KeyError, match="no vantage point 'dmz'"):
        vantage_lab.unreachable(0, from_vantage="dmz")
    with pytest.raises(KeyError, match="no such rule"):
        vantage_lab.allow(22, host=0, from_vantage=OFFICE)
    assert vantage_lab.rules == []


def test_each_scanner_routes_only_to_its_own_link_and_the_labs_hosts(vantage_lab):
    for vantage in (DC1, OFFICE):
        namespace = vantage_lab.scanner_ns(vantage)
        routes = _run("ip", "-n", namespace, "-4", "route", "show").stdout.splitlines()
        link = vantage_lab.scanner_address(vantage).rsplit(".", 1)[0]
        assert [route.split()[0] for route in routes] == [f"{link}.0/24", "198.18.100.0/24"]
        # Another vantage's scanner, or an address outside the lab: no route at all (a lookup, nothing is sent).
        other = vantage_lab.scanner_address(OFFICE if vantage == DC1 else DC1)
        for address in (other, "198.19.255.1"):  # in the benchmarking range, outside the lab
            lookup = _run("ip", "-n", namespace, "route", "get", address, check=False)
            assert lookup.returncode != 0 and "unreachable" in lookup.stderr, lookup


def test_close_leaves_no_namespace_wrapper_or_listener(tmp_path):
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with VantageLab(tmp_path, vantages=["a", "b", "c"], hosts=1) as lab, VantageLab(tmp_path, [DC1, OFFICE]) as other:
        # Two labs at once: names of their own, and both scan.
        assert not set(lab.namespaces) & set(other.namespaces)
        lab.listen(0, 41022)
        assert port_states(lab, "c", lab.addresses[0], [41022]) == {41022: "open"}
        assert port_states(other, DC1, other.addresses[0], [41022]) == {41022: "closed"}
        made = lab.namespaces + other.namespaces
        wrappers = [lab.nmap_path(name) for name in lab.vantages] + [other.nmap_path(name) for name in other.vantages]
        listener = lab.listeners[0]
        assert set(made) <= set(namespaces().split())

    present = namespaces()
    assert [name for name in made if name in present] == []
    assert [path for path in wrappers if path.exists()] == []
    assert listener.poll() is not None
    lab.close()  # closing twice does nothing


def test_a_lab_that_fails_while_building_deletes_what_it_made(tmp_path, monkeypatch):
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    made = []

    def failing_run(*argv: str, check: bool = True):
        if argv[:3] == ("ip", "netns", "add"):
            made.append(argv[3])
        if "route" in argv and "add" in argv and len(made) == 3:
            raise RuntimeError("the second scanner's route failed")
        return _run(*argv, check=check)

    monkeypatch.setattr(vantage_lab_module, "_run", failing_run)
    with pytest.raises(RuntimeError, match="second scanner's route"):
        VantageLab(tmp_path, vantages=[DC1, OFFICE])

    assert len(made) == 3
    present = namespaces()
    assert [name for name in made if name in present] == []
    assert list(Path(tmp_path).iterdir()) == []
