"""Certificates through nmap imports (no nmap needed), their changes, findings, and expiry alerts on a schedule."""

import csv
import html
import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from alerts.choices import ChannelKind
from alerts.models import AlertRule, Channel, Notification
from certs import expiry
from certs.choices import Finding
from certs.models import Certificate, Sighting
from inventory.models import Zone
from reach.models import VantagePoint
from scans import orders, queueing, remote
from scans.choices import ChangeKind
from scans.ingest.imports import import_scan_file
from scans.models import Change, ScanChunk, ScanProfile, ScanTarget
from scans.services import start_run
from tests.tls_lab import make_certificate

pytestmark = pytest.mark.django_db

REAL = Path(__file__).parent / "fixtures" / "nmap" / "lab_tls_ssl_cert.xml"
ADDRESS = "127.77.200.1"


def nmap_file(tmp_path, made, *, address=ADDRESS, name="scan.xml") -> Path:
    """The real ssl-cert scan with ``made`` for its certificate (escaped as nmap does) and ``address`` for its host."""
    text = REAL.read_text()
    start = text.index('<elem key="pem">') + len('<elem key="pem">')
    end = text.index("</elem>", start)
    pem = html.escape(made.cert_pem.decode().strip()).replace("\n", "&#xa;") if made else "garbage"
    path = tmp_path / name
    path.write_text((text[:start] + pem + text[end:]).replace("127.77.200.1", address))
    return path


def import_file(path: Path, *, on_disk=True):
    with open(path, "rb") as source:
        return import_scan_file(source, zone=Zone.default(), name=path.name, path=str(path) if on_disk else None)


def current(address=ADDRESS) -> Certificate:
    return Sighting.objects.get(service__host__address=address, current=True).certificate


@pytest.mark.parametrize(
    ("on_disk", "parallel"), [(True, False), (True, True), (False, False)], ids=["file", "parallel", "stream"]
)
def test_an_imported_scan_records_the_certificate_and_a_swap_is_one_change(tmp_path, on_disk, parallel, settings):
    if parallel:
        settings.INGEST_PARALLEL_MIN_BYTES = 0  # parsed by other processes: the certificates are read again
    old, new = make_certificate("old.lab"), make_certificate("new.lab", sans=("new.lab",))
    first = import_file(nmap_file(tmp_path, old, name="a.xml"), on_disk=on_disk)
    assert current().sha256 == old.sha256
    assert not Change.objects.filter(kind=ChangeKind.CERTIFICATE_CHANGED).exists()

    second = import_file(nmap_file(tmp_path, new, name="b.xml"), on_disk=on_disk)
    import_file(nmap_file(tmp_path, new, name="c.xml"), on_disk=on_disk)

    change = Change.objects.get(kind=ChangeKind.CERTIFICATE_CHANGED)
    assert change.run == second and change.chunk == second.chunks.get() and change.port == 41443
    assert change.before == old_snapshot(old) and change.after["fingerprint"] == new.sha256
    assert first != second
    assert current().sans == ["new.lab"]


def old_snapshot(made):
    certificate = Certificate.objects.get(sha256=made.sha256)
    return {"fingerprint": made.sha256, "subject": "CN=old.lab", "not_after": certificate.not_after.isoformat()}


def test_a_certificate_that_does_not_parse_is_skipped_and_the_rest_of_the_scan_stands(tmp_path):
    run = import_file(nmap_file(tmp_path, None))

    assert not Certificate.objects.exists()
    assert Change.objects.filter(run=run, kind=ChangeKind.PORT_OPENED, port=41443).exists()


def test_back_to_an_earlier_certificate_is_a_change_and_the_same_sighting_again(tmp_path):
    one, two = make_certificate("one.lab"), make_certificate("two.lab")
    for index, made in enumerate((one, two, one)):
        import_file(nmap_file(tmp_path, made, name=f"{index}.xml"))

    assert Change.objects.filter(kind=ChangeKind.CERTIFICATE_CHANGED).count() == 2
    assert Sighting.objects.count() == 2
    assert current().sha256 == one.sha256


def test_one_certificate_on_two_ports_is_one_certificate_row(tmp_path):
    shared = make_certificate("shared.lab")
    import_file(nmap_file(tmp_path, shared, name="a.xml"))
    import_file(nmap_file(tmp_path, shared, address="127.77.200.2", name="b.xml"))

    assert Certificate.objects.count() == 1
    assert Sighting.objects.filter(current=True).count() == 2


def test_findings_follow_the_certificate_and_the_setting(tmp_path, settings):
    import_file(nmap_file(tmp_path, make_certificate("soon.lab", days_left=20, rsa_bits=1024, self_signed=True)))
    now = timezone.now()

    assert current().findings(now) == [Finding.EXPIRING, Finding.SELF_SIGNED, Finding.WEAK_KEY]
    settings.CERT_EXPIRY_WARN_DAYS = 10
    assert current().findings(now) == [Finding.SELF_SIGNED, Finding.WEAK_KEY]
    assert current().findings(now + timedelta(days=21)) == [Finding.EXPIRED, Finding.SELF_SIGNED, Finding.WEAK_KEY]


# --- expiry alerts on a schedule ---------------------------------------------------------


def expiry_changes():
    return list(
        Change.objects.filter(kind__in=[ChangeKind.CERTIFICATE_EXPIRING, ChangeKind.CERTIFICATE_EXPIRED])
        .order_by("id")
        .values_list("kind", "run", "port")
    )


def test_expiry_changes_repeat_once_per_interval_not_on_every_check_or_scan(tmp_path, settings):
    settings.CERT_EXPIRY_WARN_DAYS, settings.CERT_EXPIRY_REPEAT_DAYS = 30, 7
    made = make_certificate("soon.lab", days_left=10)
    import_file(nmap_file(tmp_path, made, name="a.xml"))
    now = timezone.now()

    assert expiry.record_expiry(now) == 1
    assert expiry.record_expiry(now + timedelta(hours=1)) == 0
    # Another scan seeing the same certificate adds nothing either.
    import_file(nmap_file(tmp_path, made, name="b.xml"))
    assert expiry.record_expiry(now + timedelta(days=6, hours=23)) == 0
    assert expiry.record_expiry(now + timedelta(days=7)) == 1
    # Expired by then: the reminder says so.
    assert expiry.record_expiry(now + timedelta(days=14)) == 1
    assert expiry_changes() == [
        (ChangeKind.CERTIFICATE_EXPIRING, None, 41443),
        (ChangeKind.CERTIFICATE_EXPIRING, None, 41443),
        (ChangeKind.CERTIFICATE_EXPIRED, None, 41443),
    ]
    expired = Change.objects.filter(kind=ChangeKind.CERTIFICATE_EXPIRED).get()
    assert expired.after["fingerprint"] == made.sha256 and expired.after["days_left"] < 0


def test_a_certificate_far_from_its_end_or_replaced_is_not_reminded(tmp_path):
    import_file(nmap_file(tmp_path, make_certificate("soon.lab", days_left=3), name="a.xml"))
    import_file(nmap_file(tmp_path, make_certificate("renewed.lab", days_left=300), name="b.xml"))

    assert expiry.record_expiry() == 0
    assert expiry_changes() == []


def test_each_port_and_certificate_is_reminded_on_its_own(tmp_path):
    made = make_certificate("soon.lab", days_left=10)
    import_file(nmap_file(tmp_path, made, name="a.xml"))
    now = timezone.now()
    expiry.record_expiry(now)
    import_file(nmap_file(tmp_path, made, address="127.77.200.2", name="b.xml"))

    assert expiry.record_expiry(now + timedelta(hours=1)) == 1
    assert set(Change.objects.filter(kind=ChangeKind.CERTIFICATE_EXPIRING).values_list("host__address", flat=True)) == {
        "127.77.200.1",
        "127.77.200.2",
    }


def test_certificate_changes_go_through_the_alert_rules(tmp_path):
    channel = Channel.objects.create(
        name="hook", kind=ChannelKind.WEBHOOK, target="http://198.18.0.9/", allow_private=True
    )
    channel.rules.set(AlertRule.objects.filter(name="Certificate changed, expiring or expired"))
    import_file(nmap_file(tmp_path, make_certificate("old.lab", days_left=5), name="a.xml"))
    # The first scan's port opened is not this rule's: no notification.
    assert not Notification.objects.exists()

    import_file(nmap_file(tmp_path, make_certificate("new.lab", days_left=5), name="b.xml"))
    expiry.record_expiry()

    kinds = sorted(Notification.objects.values_list("changes__kind", flat=True))
    assert kinds == [ChangeKind.CERTIFICATE_CHANGED, ChangeKind.CERTIFICATE_EXPIRING]


# --- manage.py certificates ---------------------------------------------------------------


@pytest.fixture
def two_ports(tmp_path):
    import_file(nmap_file(tmp_path, make_certificate("soon.lab", days_left=5), name="a.xml"))
    import_file(nmap_file(tmp_path, make_certificate("later.lab", days_left=90), address="127.77.200.2", name="b.xml"))


def command(*args) -> str:
    out = StringIO()
    call_command("certificates", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_command_lists_expiring_soonest_first_and_narrows_by_days(two_ports):
    lines = command().splitlines()
    assert [line.split()[2] for line in lines] == ["127.77.200.1", "127.77.200.2"]
    assert "CN=soon.lab" in lines[0] and "[expiring]" in lines[0] and "[ok]" in lines[1]
    assert len(command("--expiring", "30").splitlines()) == 1


def test_the_command_writes_csv_and_json(two_ports):
    rows = list(csv.DictReader(StringIO(command("--format", "csv"))))
    assert [row["subject"] for row in rows] == ["CN=soon.lab", "CN=later.lab"]
    data = json.loads(command("--format", "json", "--finding", "expiring"))
    assert [(item["address"], item["findings"]) for item in data] == [("127.77.200.1", "expiring")]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--zone", "nowhere"], "No such zone: nowhere"), (["--expiring", "-1"], "0 or more")],
)
def test_the_command_refuses_bad_arguments(two_ports, args, message):
    with pytest.raises(CommandError, match=message):
        command(*args)


def test_a_remote_scanners_result_carries_the_certificate_to_the_centre(tmp_path, monkeypatch):
    """A zone whose home is a remote scanner (no database credentials): the certificate travels in its nmap XML."""
    monkeypatch.setattr(queueing, "send_on_commit", lambda run, ids: None)
    branch = Zone.objects.create(name="branch")
    home = VantagePoint.objects.get(home_of=branch)  # made with the zone
    home.remote = True
    home.save()
    target = ScanTarget.objects.create(
        name="branch tls", zone=branch, targets=ADDRESS, ports="41443", profile=ScanProfile.objects.get(slug="tls")
    )
    run = start_run(target)
    chunk = run.chunks.get()
    ScanChunk.objects.filter(pk=chunk.pk).update(order_id="0f" * 16)
    made = make_certificate("branch.lab")
    body = {
        "v": orders.VERSION,
        "chunk": chunk.pk,
        "vantage": home.name,
        "order": "0f" * 16,
        "scanner": "scanner-branch@box",
        "addresses": [ADDRESS],
        "xml": orders.pack(nmap_file(tmp_path, made).read_bytes()),
    }

    remote.accept_result(body, orders.sign(orders.RESULT, body, home.key))

    sighting = Sighting.objects.get(current=True)
    assert sighting.certificate.sha256 == made.sha256 and sighting.service.host.zone == branch
