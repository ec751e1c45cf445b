"""Every row of the diff-semantics table (DESIGN.md), on PostgreSQL, from scan files.

Each scenario is a folder of scan files (nmap XML, masscan XML or JSON) under
fixtures/nmap/semantics/, imported in order (by the scanners' own start
times). The table says which changes the LAST file must produce and what the
inventory then holds. The masscan and "listed twice" rows were written by the
real tools in a namespace lab (fixtures/produce_lab_fixtures.sh).

Every scenario runs through each way a scan reaches the database:

- ``sql-file``: the set-based SQL engine fed by parallel parser processes
  (``ingest_file``, forced parallel even for these small files);
- ``sql-stream``: the SQL engine fed by the streaming reader in-process;
- ``python``: the batched engine (``scans.ingest.diff`` + ORM) the SQLite default uses.

So the three are held to one specification. The SQLite run (``make
test-sqlite``) runs the ``python`` engine, the only one SQLite has, on the
embedded default's own database settings.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from certs.models import Sighting
from inventory.choices import HostStatus, PortState
from inventory.models import Host, Service, Zone
from inventory.ports import PortSet
from reach.models import PortView, VantagePoint
from scans.choices import ChangeKind as K
from scans.choices import ChunkStatus, RunStatus, Trigger
from scans.ingest.diff import Coverage
from scans.ingest.entry import ingest
from scans.ingest.imports import import_scan_file
from scans.models import Change, ScanChunk, ScanRun
from scans.nmap_xml import (
    HostObservation,
    NmapRunInfo,
    NmapXmlError,
    NmapXmlReader,
    PortObservation,
    fragments,
    read_fragment,
)
from scans.services import expire_flapping
from tests.factories import PROBED

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

SCENARIOS = Path(__file__).parent / "fixtures" / "nmap" / "semantics"
A, B = "198.18.20.1", "198.18.20.2"  # the lab-written rows use them too
SQL_ENGINE_ONLY = pytest.mark.postgresql("the set-based SQL engine (scans/ingest/postgres/) is PostgreSQL's")
ENGINES = (
    pytest.param("sql-file", marks=SQL_ENGINE_ONLY),
    pytest.param("sql-stream", marks=SQL_ENGINE_ONLY),
    "python",
)


@dataclass(frozen=True)
class Row:
    scenario: str
    changes: set  # (kind, address, port or None) made by the last file
    ports: dict = field(default_factory=dict)  # (address, port) -> state afterwards
    hosts: dict = field(default_factory=dict)  # address -> status afterwards
    stale: frozenset = frozenset()  # (address, port) kept from before, not re-observed
    refused: bool = False  # the last file is refused as a whole
    # (address, port, vantage point) -> state in that vantage point's view ("open stale": kept, not re-observed);
    # a file named "NN-from-<name>.xml" was scanned from vantage point <name>, any other from the zone's home
    views: dict = field(default_factory=dict)


TABLE = [
    # host up, port probed, open | unknown -> port_opened
    Row("port_opened_from_unknown", {(K.PORT_OPENED, A, 80)}, {(A, 22): "open", (A, 80): "open"}),
    # host up, port probed, open | closed -> port_opened
    Row("port_opened_from_closed", {(K.PORT_OPENED, A, 80)}, {(A, 80): "open"}),
    # host up, port probed, closed | open -> port_closed
    Row("port_closed_when_probed", {(K.PORT_CLOSED, A, 80)}, {(A, 22): "open", (A, 80): "closed"}),
    # host up, port probed, filtered | open -> port_filtered (not closed)
    Row("port_filtered_is_not_closed", {(K.PORT_FILTERED, A, 80)}, {(A, 80): "filtered"}),
    # host up, port probed, open | filtered (open before it was filtered) -> port_returned, not a new port
    Row("port_returned_after_filtered", {(K.PORT_RETURNED, A, 80)}, {(A, 80): "open"}),
    # host up, port probed, filtered | closed -> nothing: still closed (so "filtered" always means "was open")
    Row("port_closed_then_filtered_stays_closed", set(), {(A, 22): "open", (A, 80): "closed"}),
    # host up, port probed, open | closed, then no answer -> port_opened: it was closed, this is new
    Row("port_opened_after_closed_then_filtered", {(K.PORT_OPENED, A, 80)}, {(A, 80): "open"}),
    # host up, port not in the probed set | open -> nothing
    Row("port_outside_probed_set_not_observed", set(), {(A, 22): "open", (A, 8080): "open"}),
    # host silent after a completed scan | up with open ports -> host_unreachable, ports kept and stale
    Row(
        "host_unreachable_keeps_ports_stale",
        {(K.HOST_UNREACHABLE, A, None)},
        {(A, 22): "open", (A, 80): "open", (B, 443): "open"},
        {A: HostStatus.UNREACHABLE, B: HostStatus.UP},
        stale=frozenset({(A, 22), (A, 80)}),
    ),
    # host responds again | unreachable -> host_returned, then its ports are diffed
    Row(
        "host_returned_then_ports_diffed",
        {(K.HOST_RETURNED, A, None), (K.PORT_OPENED, A, 443), (K.PORT_CLOSED, A, 80)},
        {(A, 22): "open", (A, 80): "closed", (A, 443): "open"},
        {A: HostStatus.UP},
    ),
    # address never seen, up -> host_discovered + port_opened for each open port
    Row(
        "host_discovered_with_open_ports",
        {(K.HOST_DISCOVERED, A, None), (K.PORT_OPENED, A, 22), (K.PORT_OPENED, A, 80)},
        {(A, 22): "open", (A, 80): "open", (B, 443): "open"},
        {A: HostStatus.UP},
    ),
    # nmap error -> nothing at all, the file is refused
    Row("nmap_error_concludes_nothing", set(), {(A, 22): "open", (A, 80): "open"}, refused=True),
    # a host nmap gave up on (host timeout) can open ports but never close them
    Row("timed_out_host_closes_nothing", {(K.PORT_OPENED, A, 443)}, {(A, 80): "open", (A, 443): "open"}),
    # service product/version differs | open -> service_changed
    Row("service_changed", {(K.SERVICE_CHANGED, A, 22)}, {(A, 22): "open"}),
    # the same scan again -> no second change
    Row("same_scan_twice", set(), {(A, 22): "open", (A, 80): "open"}),
    # toggling open/closed again and again -> still recorded, marked flapping
    Row("port_flapping", {(K.PORT_CLOSED, A, 80)}, {(A, 80): "closed"}),
    # masscan after nmap: what it heard opens (41443); its silence closes nothing
    # (41080 stopped, B dropped everything): no port_closed, no host_unreachable, nothing stale
    Row(
        "masscan_after_nmap_closes_nothing",
        {(K.PORT_OPENED, A, 41443)},
        {(A, 41022): "open", (A, 41080): "open", (A, 41443): "open", (B, 41443): "open"},
        {A: HostStatus.UP, B: HostStatus.UP},
    ),
    Row(
        "masscan_json_after_nmap_closes_nothing",
        {(K.PORT_OPENED, A, 41443)},
        {(A, 41022): "open", (A, 41080): "open", (A, 41443): "open", (B, 41443): "open"},
        {A: HostStatus.UP, B: HostStatus.UP},
    ),
    # --- vantage points: the inventory is the zone's home's view; another's scan writes only its own view
    # from elsewhere: open where it was not -> exposure_opened there; the inventory keeps the home's states
    Row(
        "vantage_scan_leaves_inventory_alone",
        {(K.EXPOSURE_OPENED, A, 22)},
        {(A, 22): "open", (A, 80): "open"},
        views={(A, 22, "office-lan"): "open"},
    ),
    # from elsewhere: open -> filtered there is exposure_closed there only
    Row(
        "vantage_closed_is_exposure_closed_there_only",
        {(K.EXPOSURE_CLOSED, A, 80)},
        {(A, 22): "open", (A, 80): "open"},
        views={(A, 22, "office-lan"): "open", (A, 80, "office-lan"): "filtered"},
    ),
    # silent to one vantage point: unreachable from there, its ports there stale; the inventory's host is up
    Row(
        "vantage_silent_host_goes_stale_there_only",
        {(K.HOST_UNREACHABLE, A, None), (K.HOST_DISCOVERED, B, None), (K.EXPOSURE_OPENED, B, 443)},
        {(A, 22): "open"},
        {A: HostStatus.UP},
        views={(A, 22, "office-lan"): "open stale", (B, 443, "office-lan"): "open"},
    ),
    # the home's scan changes the inventory only, never another vantage point's view
    Row(
        "home_scan_leaves_vantage_view_alone",
        {(K.PORT_OPENED, A, 22)},
        {(A, 22): "open"},
        {A: HostStatus.UP},
        views={(A, 5432, "office-lan"): "open"},
    ),
    # one vantage point's scan says nothing about another's view
    Row(
        "vantage_views_are_independent",
        {(K.EXPOSURE_CLOSED, A, 22)},
        views={(A, 22, "office-lan"): "closed", (A, 22, "dmz"): "open"},
    ),
    # --- certificates behind TLS ports (nmap's ssl-cert; the files are the real scan in
    # fixtures/nmap/lab_tls_ssl_cert.xml with its address and certificate replaced)
    # another certificate on an open port -> certificate_changed (before and after)
    Row("certificate_changed", {(K.CERTIFICATE_CHANGED, A, 41443)}, {(A, 41443): "open"}),
    # a port's first certificate is an enrichment, not a change
    Row("certificate_first_seen_is_not_a_change", set(), {(A, 41443): "open"}),
    # another vantage point's scan sees another certificate: the inventory's port keeps its own
    Row(
        "certificate_seen_from_elsewhere_changes_nothing",
        {(K.EXPOSURE_OPENED, A, 41443)},
        {(A, 41443): "open"},
        views={(A, 41443, "office-lan"): "open"},
    ),
    # nmap by two names resolving to A lists A twice: merged, each change once
    Row(
        "nmap_lists_one_address_twice",
        {(K.PORT_OPENED, A, 41443), (K.PORT_CLOSED, A, 41080), (K.PORT_CLOSED, B, 41443)},
        {(A, 41022): "open", (A, 41080): "closed", (A, 41443): "open", (B, 41443): "closed"},
        {A: HostStatus.UP, B: HostStatus.UP},
    ),
]


@pytest.fixture(params=ENGINES)
def engine(request, settings, monkeypatch):
    if request.param == "python":
        settings.INGEST_SQL_ENGINE = False
    settings.INGEST_PARALLEL_MIN_BYTES = 0  # sql-file: parse in several processes however small
    return request.param


def import_all(paths: list[Path], engine: str):
    zone = Zone.default()
    runs = []
    for path in paths:
        _, _, vantage = path.stem.partition("-from-")
        point = VantagePoint.objects.get_or_create(name=vantage)[0] if vantage else None
        with open(path, "rb") as source:
            on_disk = str(path) if engine == "sql-file" else None
            runs.append(import_scan_file(source, zone=zone, vantage=point, name=path.name, path=on_disk))
    return runs


def changes_of(run) -> set:
    return {(change.kind, change.host.address, change.port) for change in Change.objects.filter(run=run)}


def scenario_files(scenario: str) -> list[Path]:
    return sorted(path for path in (SCENARIOS / scenario).iterdir() if path.suffix in (".xml", ".json"))


@pytest.mark.parametrize("row", TABLE, ids=[row.scenario for row in TABLE])
def test_semantics_table(row: Row, engine):
    files = scenario_files(row.scenario)
    assert len(files) >= 2, "a scenario needs a before and an after"
    *before, last = files
    import_all(before, engine)
    changes_before = Change.objects.count()

    if row.refused:
        with pytest.raises(NmapXmlError):
            import_all([last], engine)
        assert Change.objects.count() == changes_before
    else:
        (run,) = import_all([last], engine)
        assert changes_of(run) == row.changes

    services = {(s.host.address, s.port): s for s in Service.objects.select_related("host")}
    for key, state in row.ports.items():
        assert services[key].state == state, key
    for address, status in row.hosts.items():
        assert Host.objects.get(address=address).status == status
    assert {key for key, service in services.items() if service.stale} == set(row.stale)
    views = {
        (view.host.address, view.port, view.vantage.name): view.state + (" stale" if view.stale else "")
        for view in PortView.objects.select_related("host", "vantage")
    }
    assert views == row.views


@pytest.mark.parametrize(
    ("scenario", "current"),
    [
        ("certificate_changed", "02.xml"),
        ("certificate_first_seen_is_not_a_change", "02.xml"),
        ("certificate_seen_from_elsewhere_changes_nothing", "01.xml"),
    ],
)
def test_the_certificate_rows_leave_the_certificate_the_home_saw_current(scenario, current, engine):
    import_all(scenario_files(scenario), engine)

    (sighting,) = Sighting.objects.filter(service__host__address=A, service__port=41443, current=True)
    (host,) = NmapXmlReader(open(SCENARIOS / scenario / current, "rb")).hosts()  # noqa: SIM115
    assert sighting.certificate.pem == host.ports[0].certificate


def test_a_port_that_keeps_toggling_is_marked_flapping(engine, settings):
    settings.FLAP_THRESHOLD = 4
    import_all(scenario_files("port_flapping"), engine)

    toggles = Change.objects.filter(port=80).order_by("created_at")
    # opened, closed, opened: below the threshold; the 4th toggle and later are flapping.
    assert [(c.kind, c.flapping) for c in toggles] == [
        (K.PORT_OPENED, False),
        (K.PORT_CLOSED, False),
        (K.PORT_OPENED, False),
        (K.PORT_CLOSED, True),
        (K.PORT_OPENED, True),
        (K.PORT_CLOSED, True),
    ]
    assert Service.objects.get(port=80).flapping
    assert not Service.objects.get(port=22).flapping


def test_a_returned_host_has_its_stale_ports_refreshed(engine):
    import_all(scenario_files("host_returned_then_ports_diffed"), engine)
    assert not Service.objects.filter(stale=True).exists()
    assert Service.objects.get(port=22).state == PortState.OPEN


def test_the_flapping_mark_is_cleared_once_the_port_settles(engine, settings):
    # The fixture scans are an hour apart: six toggles fit in six hours.
    settings.FLAP_THRESHOLD, settings.FLAP_WINDOW_MINUTES = 4, 6 * 60
    import_all(scenario_files("port_flapping"), engine)
    settled = Service.objects.get(port=80)
    assert settled.flapping

    assert expire_flapping(now=settled.last_changed + timedelta(minutes=6 * 60 - 1)) == 0
    assert expire_flapping(now=settled.last_changed + timedelta(minutes=6 * 60 + 1)) == 1
    assert not Service.objects.get(port=80).flapping


def many_hosts_file(tmp_path, repeat_first: bool) -> Path:
    """A scan of 64 hosts (so a parallel parse cuts it into several fragments),
    optionally listing the first host again at the very end, with one more port open."""
    text = (SCENARIOS / "port_opened_from_unknown" / "01.xml").read_text()
    head, rest = text.split("<host ", 1)
    host, tail = rest.split("</host>\n", 1)
    hosts = [f"<host {host.replace(A, f'198.18.21.{n}')}</host>\n" for n in range(1, 65)]
    if repeat_first:
        again = hosts[0].replace('portid="22"', 'portid="222"')
        assert again != hosts[0]
        hosts.append(again)
    path = tmp_path / "many.xml"
    path.write_text(head + "".join(hosts) + tail)
    return path


def test_a_host_listed_twice_is_merged_even_across_fragments(engine, tmp_path):
    """nmap lists an address once per target naming it: the entries are merged,
    wherever they fall (the parallel parse rolls back to a savepoint and merges)."""
    import_all([many_hosts_file(tmp_path, repeat_first=True)], engine)

    assert Host.objects.count() == 64
    assert Change.objects.filter(kind=K.PORT_OPENED).count() == 64 + 1
    first = {service.port: service.state for service in Service.objects.filter(host__address="198.18.21.1")}
    assert first == {22: "open", 222: "open"}
    assert ScanRun.objects.get().hosts_total == 64

    import_all([many_hosts_file(tmp_path, repeat_first=False)], engine)
    assert Host.objects.count() == 64
    # The second file says 222 closed (its summary): one change.
    assert Change.objects.filter(kind=K.PORT_CLOSED).count() == 1


def test_nmap_by_hostname_unites_the_names(engine):
    """The real file of `nmap www.lab.test lab.test` (both resolve to one address)."""
    import_all(scenario_files("nmap_lists_one_address_twice"), engine)
    assert Host.objects.get(address=A).hostnames == ["www.lab.test", "lab.test"]


def test_a_large_file_is_cut_into_fragments_parsed_in_parallel(tmp_path):
    path = many_hosts_file(tmp_path, repeat_first=False)
    pieces = fragments(str(path), 4)
    assert len(pieces) == 4
    info = NmapRunInfo()
    addresses = [host.address for piece in pieces for host in read_fragment(str(path), piece, info)]
    assert addresses == [f"198.18.21.{n}" for n in range(1, 65)]


def test_an_error_deep_in_a_fragment_gives_its_line_in_the_file(tmp_path):
    path = many_hosts_file(tmp_path, repeat_first=False)
    lines = path.read_text().splitlines(keepends=True)
    broken = max(number for number, line in enumerate(lines) if "</port>" in line)  # in the last fragment
    lines[broken] = lines[broken].replace("</port>", "</prt>")
    path.write_text("".join(lines))
    info = NmapRunInfo()
    with pytest.raises(NmapXmlError, match=rf"malformed or truncated at line {broken + 1}, column \d+: mismatched tag"):
        for piece in fragments(str(path), 4):
            list(read_fragment(str(path), piece, info))
    with (
        pytest.raises(NmapXmlError, match=rf"at line {broken + 1}, column \d+: mismatched tag"),
        open(path, "rb") as source,
    ):
        list(NmapXmlReader(source).hosts())


@pytest.mark.parametrize("sql_engine", [pytest.param(True, marks=SQL_ENGINE_ONLY), False], ids=["sql", "python"])
def test_a_host_listed_twice_in_one_chunk_is_merged(settings, sql_engine):
    settings.INGEST_SQL_ENGINE = sql_engine
    now, zone = timezone.now(), Zone.default()
    closed = (("*", PortState.CLOSED, PortSet()),)
    first = HostObservation("127.60.0.9", True, ("www.lab.test",), (PortObservation("tcp", 22, "open"),), closed)
    second = HostObservation("127.60.0.9", True, ("lab.test",), (PortObservation("tcp", 80, "open"),), closed)
    run = ScanRun.objects.create(zone=zone, trigger=Trigger.IMPORT, status=RunStatus.RUNNING, created_at=now)
    chunk = ScanChunk.objects.create(run=run, index=0, status=ChunkStatus.RUNNING, attempts=1)
    coverage = Coverage(frozenset(), PROBED, complete=True, observed_at=now)
    with transaction.atomic():
        summary = ingest(run=run, chunk=chunk, zone=zone, coverage=coverage, observations=[first, second], now=now)

    assert (summary.hosts_seen, summary.hosts_up) == (1, 1)
    host = Host.objects.get()
    assert host.hostnames == ["www.lab.test", "lab.test"]
    assert set(host.services.values_list("port", "state")) == {(22, "open"), (80, "open")}
    assert set(Change.objects.values_list("kind", "port")) == {
        (K.HOST_DISCOVERED, None),
        (K.PORT_OPENED, 22),
        (K.PORT_OPENED, 80),
    }


# --- fast discovery: masscan sweeps, nmap confirms (scans.discovery) ---------------------------
#
# Each row is a folder of what a fast-discovery run reads, written by the real masscan and
# nmap in a namespace lab (fixtures/produce_discovery_fixtures.sh): 01.xml, nmap's scan
# before; 02-discovery.txt and 02-sweep.txt, the sweep's masscan list output; 03-confirm.xml
# (if the sweep found anything), nmap's confirm of what it found. They go through the run's
# own path: the sweep's finds recorded by ``complete_sweep`` (which plans the confirm chunks),
# each confirm chunk's nmap output ingested by ``ingest_output``, the run finalized.

DISCOVERY_TABLE = [
    # the sweep found no open port -> nothing closed, nothing stale, no host down
    Row(
        "discovery_found_nothing_closes_nothing",
        set(),
        {(A, 41022): "open", (A, 41080): "open", (B, 41443): "open"},
        {A: HostStatus.UP, B: HostStatus.UP},
    ),
    # nmap confirms what masscan found, and only that: 41022 (found, then closed before the
    # confirm, probed by nmap) closes, 41443 opens; 41080 (closed, never found nor probed) stays open
    Row(
        "discovery_confirm_concludes_only_what_nmap_probed",
        {(K.PORT_CLOSED, A, 41022), (K.PORT_OPENED, A, 41443)},
        {(A, 41022): "closed", (A, 41080): "open", (A, 41443): "open", (B, 41443): "open"},
        {A: HostStatus.UP, B: HostStatus.UP},
    ),
    # a host that did not answer the sweep's discovery is not swept nor confirmed: not marked down
    Row(
        "discovery_silent_host_is_not_marked_down",
        set(),
        {(A, 41022): "open", (A, 41080): "open", (B, 41443): "open"},
        {A: HostStatus.UP, B: HostStatus.UP},
    ),
]


@pytest.fixture(params=ENGINES[1:], ids=["sql", "python"])
def chunk_engine(request, settings):
    """A chunk's ingest: the SQL engine fed in-process, or the python one."""
    if request.param == "python":
        settings.INGEST_SQL_ENGINE = False
    settings.SCAN_CONFIRM_CHANGES = False  # the re-probe runs nmap: it has tests of its own (test_confirm.py)
    return request.param


def fast_discovery_run(folder: Path):
    """A fast-discovery run of A and B fed the folder's sweep and confirm output, as a worker feeds them."""
    from unittest import mock

    from scans import chunks, discovery, services
    from scans.choices import ChunkStep, ProfileKind
    from scans.masscan_list import read_list
    from scans.models import ScanProfile, ScanTarget, ScopeRule

    ScopeRule.objects.get_or_create(network="198.18.20.0/24", action="allow", reason="lab fixtures")
    profile = ScanProfile.objects.create(slug="fast-row", name="Fast row", kind=ProfileKind.FAST_DISCOVERY)
    target = ScanTarget.objects.create(name="row", zone=Zone.default(), targets=f"{A}\n{B}", profile=profile)
    with mock.patch("scans.queueing.send_on_commit"):
        run = services.start_run(target)
        sweep = chunks.claim(run.chunks.get().pk, "fixture")
        swept = {A, B}
        answered = None
        if (folder / "02-discovery.txt").exists():
            with open(folder / "02-discovery.txt") as output:
                swept = read_list(output).only(swept).answered
            answered = len(swept)
        with open(folder / "02-sweep.txt") as output:
            finds = read_list(output).only(swept)
        assert discovery.complete_sweep(sweep, finds.open_ports, addresses=2, answered=answered)
    confirms = list(run.chunks.filter(step=ChunkStep.CONFIRM))
    assert len(confirms) == (1 if finds.open_ports else 0), "one confirm file per row"
    for confirm_chunk in confirms:
        claimed = chunks.claim(confirm_chunk.pk, "fixture")
        chunks.ingest_output(claimed, folder / "03-confirm.xml", claimed.addresses, folder)
    return services.finalize_run(run.pk)


@pytest.mark.parametrize("row", DISCOVERY_TABLE, ids=[row.scenario for row in DISCOVERY_TABLE])
def test_fast_discovery_semantics(row: Row, chunk_engine):
    folder = SCENARIOS / row.scenario
    import_all([folder / "01.xml"], "python" if chunk_engine == "python" else "sql-stream")

    run = fast_discovery_run(folder)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert changes_of(run) == row.changes
    services = {(s.host.address, s.port): s for s in Service.objects.select_related("host")}
    assert {key: services[key].state for key in row.ports} == row.ports
    assert {address: Host.objects.get(address=address).status for address in row.hosts} == row.hosts
    assert not any(service.stale for service in services.values())
