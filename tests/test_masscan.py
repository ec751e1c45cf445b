"""masscan's output imported: XML and JSON as the real tool writes them, merged per
address, concluding only what masscan heard (nothing closed, nothing unreachable)."""

import html
import io
import json
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from inventory.choices import HostStatus, PortState
from inventory.models import Host, Service, Zone
from scans.choices import ChangeKind, RunStatus, Scanner
from scans.constants import SCRIPT_OUTPUT_MAX
from scans.ingest.imports import import_scan_file
from scans.masscan_json import RECORD_MAX_CHARS
from scans.models import Change, ScanProfile, ScanRun, ScanTarget, ScopeRule
from scans.nmap_xml import NmapXmlError
from scans.scanfiles import merged_hosts, open_scan_file
from tests.netns import LAB_NETWORK, masscan_unavailable_reason
from tests.test_scan_lab import scan

pytestmark = pytest.mark.django_db

MASSCAN = Path(__file__).parent / "fixtures" / "masscan"
A, B = "198.18.20.1", "198.18.20.2"
BANNER = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"


def read(blob: bytes):
    scan_file = open_scan_file(io.BytesIO(blob))
    entries = list(scan_file.entries())
    return scan_file, entries, list(merged_hosts(scan_file))


def picture(hosts) -> dict:
    return {host.address: (host.up, {(p.protocol, p.port, p.state) for p in host.ports}) for host in hosts}


LAB_PICTURE = {A: (True, {("tcp", 41022, "open"), ("tcp", 41080, "open")}), B: (True, {("tcp", 41443, "open")})}


def old_json(blob: bytes) -> bytes:
    """lab_ports.json as masscan before 1.0.4 wrote it: a comma after each record, no
    brackets, and a last line that is not JSON."""
    records = [json.loads(line) for line in blob.decode().splitlines() if line.startswith("{")]
    return "".join(json.dumps(record) + ",\n" for record in records).encode() + b"{finished: 1}\n"


@pytest.mark.parametrize(
    ("name", "label"),
    [("lab_ports.xml", "masscan XML"), ("lab_ports.json", "masscan JSON"), ("lab_ports.ndjson", "masscan JSON")],
)
def test_real_masscan_output_lists_a_record_per_port_and_merges_per_address(name, label):
    scan_file, entries, hosts = read((MASSCAN / name).read_bytes())
    assert scan_file.label == label and scan_file.is_masscan
    assert len(entries) == 3  # one per open port
    assert picture(hosts) == LAB_PICTURE
    assert all(host.other_ports == () and not host.timed_out for host in hosts)
    assert scan_file.info.started is not None
    assert not scan_file.info.probed.get("tcp")  # masscan writes no port list


def test_the_json_of_older_masscan_versions_is_read_too():
    _, _, hosts = read(old_json((MASSCAN / "lab_ports.json").read_bytes()))
    assert picture(hosts) == LAB_PICTURE


@pytest.mark.parametrize("name", ["lab_banners.xml", "lab_banners.json"])
def test_a_banner_names_the_service_and_is_kept_as_script_output(name):
    _, entries, hosts = read((MASSCAN / name).read_bytes())
    assert len(entries) == 4  # three ports and a banner of one of them
    ssh = next(port for host in hosts for port in host.ports if port.port == 41022)
    assert (ssh.state, ssh.name, ssh.identified) == (PortState.OPEN, "ssh", False)
    assert ssh.scripts == (("masscan-ssh", BANNER),)


def test_closed_records_are_answers_not_closed_ports():
    _, entries, hosts = read((MASSCAN / "lab_show_closed.xml").read_bytes())
    assert len(entries) == 3
    assert picture(hosts) == {A: (True, {("tcp", 41022, "open")})}


def test_a_masscan_file_that_found_nothing_is_read():
    xml = (MASSCAN / "lab_ports.xml").read_text()
    empty = xml[: xml.index("<host ")] + xml[xml.index("<runstats>") :]
    assert read(empty.encode())[2] == []
    assert read(b"[\n]\n")[2] == []


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b'[\n{"ip": "198.18.20.1", "ports": []}\n,\n', r"ends before masscan's closing '\]'"),
        (b'[\n{"ip": "198.18.20.1"}\n,\n{"ip": "198.18.20.2", "ports": [}\n]\n', r"record 2 is malformed .* line 4"),
        (b'[\n{"ip": "999.1.1.1", "ports": []}\n]\n', r"record 1 \(line 2\): '999\.1\.1\.1' is not an IP address"),
        (b'{"ip": "198.18.20.1", "ports": [{"port": 70000, "proto": "tcp", "status": "open"}]}', "not within 1-65535"),
        (b'{"ip": "198.18.20.1", "ports": [{"port": "22", "proto": "tcp", "status": "open"}]}', "not a number"),
        (b'{"name": "not masscan"}', 'has no "ip": this is not masscan JSON'),
        (b"[1]", "not masscan JSON output: unexpected '1' at line 1"),
        (b'[{"ip": "198.18.20.1"}, 7]', "unexpected '7' at line 1"),
        (b'[\n{"ip": "198.18.20.1"}\n]\n]', "after the end of masscan's JSON array"),
        (
            b'{"ip": "198.18.20.1", "ports": [{"port": 1, "proto": "tcp", "service": "x"}]}',
            '"service" is not an object',
        ),
    ],
)
def test_bad_json_raises_a_clear_error_naming_the_record(blob, message):
    with pytest.raises(NmapXmlError, match=message):
        read(blob)


def test_a_record_larger_than_the_limit_is_refused_without_reading_the_rest():
    blob = b'[\n{"ip": "198.18.20.1", "pad": "' + b"x" * (RECORD_MAX_CHARS + 10) + b'"}\n]\n'
    with pytest.raises(NmapXmlError, match=r"record 1 \(line 2\) is longer than"):
        read(blob)


def test_text_from_the_scanned_host_is_bounded_and_has_no_nul():
    banner = "<b>hi</b>\u0000" + "A" * (SCRIPT_OUTPUT_MAX + 500)
    record = {"ip": A, "ports": [{"port": 41022, "proto": "tcp", "service": {"name": "ssh\u0000", "banner": banner}}]}
    _, _, hosts = read(json.dumps(record).encode())
    (port,) = hosts[0].ports
    ((script, output),) = port.scripts
    assert "\x00" not in output + script + port.name
    assert len(output) == SCRIPT_OUTPUT_MAX and output.startswith("<b>hi</b>A")


# --- the import paths ---------------------------------------------------------------------


def upload(client, path: Path, blob: bytes | None = None):
    file = SimpleUploadedFile(path.name, blob if blob is not None else path.read_bytes())
    return client.post(reverse("import"), {"file": file, "zone": Zone.default().pk})


def test_admin_imports_masscan_xml_on_the_upload_page(as_admin):
    response = upload(as_admin, MASSCAN / "lab_ports.xml")

    run = ScanRun.objects.get()
    assert response.status_code == 302 and response.url == run.get_absolute_url()
    assert (run.scanner, run.status, run.hosts_total, run.hosts_up) == (Scanner.MASSCAN, RunStatus.SUCCEEDED, 2, 2)
    assert set(Change.objects.values_list("kind", "host__address", "port")) == {
        (ChangeKind.HOST_DISCOVERED, A, None),
        (ChangeKind.HOST_DISCOVERED, B, None),
        (ChangeKind.PORT_OPENED, A, 41022),
        (ChangeKind.PORT_OPENED, A, 41080),
        (ChangeKind.PORT_OPENED, B, 41443),
    }
    # masscan's start time, not the upload's.
    assert Host.objects.get(address=A).last_seen.timestamp() == 1796516239
    page = html.unescape(as_admin.get(run.get_absolute_url()).content.decode())
    assert "masscan (imported file)" in page
    assert "does not record which ports it probed" in page and "It closed no port" in page
    assert "not recorded by masscan" in page
    followed = html.unescape(as_admin.get(reverse("run-list")).content.decode())
    assert "file import" in followed


def test_the_api_imports_masscan_json(admin):
    client = APIClient()
    client.force_authenticate(admin)
    file = SimpleUploadedFile("scan.json", (MASSCAN / "lab_ports.json").read_bytes())
    response = client.post("/api/imports/", {"file": file}, format="multipart")
    assert response.status_code == 201, response.json()
    assert (response.json()["scanner"], response.json()["hosts_total"]) == ("masscan", 2)
    assert Service.objects.filter(state=PortState.OPEN).count() == 3


def test_the_command_imports_masscan_ndjson(capsys):
    call_command("import_nmap", str(MASSCAN / "lab_ports.ndjson"))
    out = capsys.readouterr().out
    assert "Imported lab_ports.ndjson: 2 host(s), 2 up, 5 change(s) (masscan: nothing closed" in out


def test_a_bad_masscan_file_is_refused_and_nothing_is_written(as_admin):
    blob = (MASSCAN / "lab_ports.json").read_bytes().rstrip().rstrip(b"]")  # never closed
    response = upload(as_admin, MASSCAN / "lab_ports.json", blob)
    assert response.status_code == 400
    assert "Nothing was imported" in html.unescape(response.content.decode())
    assert not ScanRun.objects.exists() and not Host.objects.exists() and not Change.objects.exists()


def test_a_file_that_is_neither_is_refused_with_the_reason(as_admin):
    response = upload(as_admin, MASSCAN / "notes.txt", b"hosts: 198.18.20.1\n")
    assert response.status_code == 400
    assert "malformed" in html.unescape(response.content.decode())


def test_a_banner_is_stored_and_shown_escaped(as_admin):
    blob = (MASSCAN / "lab_banners.xml").read_text().replace(BANNER, "&lt;script&gt;alert(1)&lt;/script&gt;")
    upload(as_admin, MASSCAN / "lab_banners.xml", blob.encode())
    service = Service.objects.get(host__address=A, port=41022)
    assert (service.name, service.scripts) == ("ssh", {"masscan-ssh": "<script>alert(1)</script>"})
    page = as_admin.get(service.host.get_absolute_url()).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page


def test_a_masscan_import_never_overwrites_an_identification():
    zone = Zone.default()
    nmap_file = (
        Path(__file__).parent / "fixtures" / "nmap" / "semantics" / "masscan_after_nmap_closes_nothing" / "01.xml"
    )
    with open(nmap_file, "rb") as source:
        import_scan_file(source, zone=zone)
    Service.objects.filter(port=41022).update(name="ssh", product="OpenSSH", version="9.2p1", identified=True)
    with open(MASSCAN / "lab_banners.xml", "rb") as source:
        run = import_scan_file(source, zone=zone)
    service = Service.objects.get(host__address=A, port=41022)
    assert (service.name, service.product, service.identified) == ("ssh", "OpenSSH", True)
    assert not Change.objects.filter(run=run).exists()


# --- the real masscan, in a namespace lab -------------------------------------------------


@pytest.fixture
def masscan_lab(netns_lab, settings):
    reason = masscan_unavailable_reason()
    if reason:
        pytest.skip(reason)
    settings.NMAP_PATH = str(netns_lab.nmap)
    ScopeRule.objects.create(network=LAB_NETWORK, action="allow", reason="namespace lab")
    return netns_lab


@pytest.mark.netns
def test_real_masscan_in_a_namespace_lab_is_imported_and_concludes_only_what_it_heard(masscan_lab, tmp_path):
    lab = masscan_lab
    h2, h3, _ = lab.addresses
    lab.listen(h2, 41022, 41080)
    lab.listen(h3, 41022)
    target = ScanTarget.objects.create(
        name="netns lab",
        zone=Zone.default(),
        targets="\n".join(lab.addresses),
        ports="41000-41100",
        profile=ScanProfile.objects.get(slug="quick"),
    )
    first = scan(target)  # nmap, through PortWatch's own run path
    assert first.status == RunStatus.SUCCEEDED, first.error

    # Now masscan cannot hear 41080 (dropped) nor h3 (silent), and h2 opens 41090.
    lab.filter_port(h2, 41080)
    lab.drop_host(h3)
    lab.listen(h2, 41090)
    # Files carry whole seconds, and an observation older than the inventory's is
    # ignored: start masscan in a later second than the scan that just ended.
    time.sleep(1.1)
    xml, js = tmp_path / "sweep.xml", tmp_path / "sweep.json"
    lab.masscan(*lab.addresses, "-p", "41000-41100", "-oX", str(xml))
    lab.masscan(*lab.addresses, "-p", "41000-41100", "-oJ", str(js))
    with open(xml, "rb") as source:
        assert b'scanner="masscan"' in source.read(400)

    call_command("import_nmap", str(xml))
    run = ScanRun.objects.get(scanner=Scanner.MASSCAN)
    assert run.status == RunStatus.SUCCEEDED
    assert set(Change.objects.filter(run=run).values_list("kind", "host__address", "port")) == {
        (ChangeKind.PORT_OPENED, h2, 41090)
    }
    assert not Change.objects.filter(kind__in=[ChangeKind.PORT_CLOSED, ChangeKind.HOST_UNREACHABLE]).exists()
    assert Service.objects.get(host__address=h2, port=41080).state == PortState.OPEN
    assert Host.objects.get(address=h3).status == HostStatus.UP
    assert not Service.objects.filter(stale=True).exists()

    call_command("import_nmap", str(js))  # the same sweep as JSON: nothing new
    latest = ScanRun.objects.filter(scanner=Scanner.MASSCAN).order_by("-created_at").first()
    assert latest != run and not Change.objects.filter(run=latest).exists()
