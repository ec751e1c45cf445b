"""nmap XML import: the same diff engine as scans; bad files write nothing."""

import html
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from inventory.choices import PortState
from inventory.models import Host, Service, Zone
from scans.choices import ChangeKind, RunStatus, Trigger
from scans.ingest.imports import import_scan_file
from scans.models import Change, ScanRun

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures" / "nmap"
REAL = FIXTURES / "lab_two_hosts_versions.xml"


def upload(client, path: Path, **data):
    file = SimpleUploadedFile(path.name, path.read_bytes(), content_type="text/xml")
    return client.post(reverse("import"), {"file": file, "zone": Zone.default().pk, **data})


def test_admin_imports_a_real_nmap_file(as_admin):
    response = upload(as_admin, REAL)

    run = ScanRun.objects.get()
    assert response.status_code == 302 and response.url == run.get_absolute_url()
    assert (run.trigger, run.status, run.hosts_total, run.hosts_up) == (Trigger.IMPORT, RunStatus.SUCCEEDED, 2, 2)
    assert run.chunks.get().coverage == {"tcp": "41000-41100"}
    assert set(Change.objects.filter(kind=ChangeKind.PORT_OPENED).values_list("host__address", "port")) == {
        ("127.77.9.1", 41022),
        ("127.77.9.1", 41080),
        ("127.77.9.2", 41025),
    }
    ssh = Service.objects.get(port=41022)
    assert (ssh.product, ssh.version, ssh.identified) == ("OpenSSH", "9.2p1 Debian 2+deb12u3", True)
    # Observations carry nmap's own time, not the upload's.
    assert Host.objects.get(address="127.77.9.1").last_seen.isoformat() == "2026-11-23T10:49:13+00:00"
    # The run page says the ports came from the file (no profile chose them).
    page = as_admin.get(run.get_absolute_url()).content.decode()
    assert "as nmap probed them in the file" in page and "profile default" not in page
    assert "tcp: 41000-41100" in page


def test_importing_the_same_file_twice_changes_nothing(as_admin):
    upload(as_admin, REAL)
    upload(as_admin, REAL)
    second = ScanRun.objects.order_by("-created_at").first()
    assert second.status == RunStatus.SUCCEEDED
    assert not Change.objects.filter(run=second).exists()


def test_an_older_file_never_overrides_newer_scans(as_admin):
    upload(as_admin, REAL)
    later = Host.objects.get(address="127.77.9.1").last_scanned + timedelta(hours=1)
    Host.objects.update(last_scanned=later)
    Service.objects.filter(port=41022).update(state=PortState.CLOSED)

    upload(as_admin, REAL)

    assert Service.objects.get(port=41022).state == PortState.CLOSED
    assert not Change.objects.filter(run=ScanRun.objects.order_by("-created_at").first()).exists()


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("truncated_mid_host.xml", "malformed or truncated"),
        ("no_runstats.xml", "ends before nmap's run statistics"),
        ("portid_not_a_number.xml", "not a number"),
        ("wrong_root.xml", "not an nmap XML file"),
        ("xxe_external_entity.xml", "declares XML entities"),
        ("billion_laughs.xml", "declares XML entities"),
        ("nmap_reported_error.xml", "did not complete"),
        ("not_xml.xml", "malformed"),
    ],
)
def test_a_bad_file_is_refused_and_nothing_is_written(as_admin, fixture, message):
    response = upload(as_admin, FIXTURES / fixture)

    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert message in page and "Nothing was imported" in page
    assert not ScanRun.objects.exists()
    assert not Host.objects.exists()
    assert not Change.objects.exists()


def test_an_oversized_upload_is_refused_with_413(as_admin, settings):
    settings.IMPORT_MAX_BYTES = 1024
    response = upload(as_admin, REAL)
    assert response.status_code == 413
    assert "imports are limited to" in response.content.decode()
    assert not ScanRun.objects.exists()


def test_the_command_imports_and_refuses_the_same_way(capsys):
    call_command("import_nmap", str(REAL))
    assert "Imported lab_two_hosts_versions.xml: 2 host(s), 2 up, 5 change(s)" in capsys.readouterr().out

    with pytest.raises(CommandError, match=r"declares XML entities.*Nothing was imported"):
        call_command("import_nmap", str(FIXTURES / "billion_laughs.xml"))
    with pytest.raises(CommandError, match="No such zone: nowhere"):
        call_command("import_nmap", str(REAL), "--zone", "nowhere")
    assert ScanRun.objects.count() == 1


@pytest.mark.parametrize("engine", ["sql-file", "sql-stream"])
def test_a_service_name_with_a_newline_is_stored_not_mistaken_for_plain(engine, tmp_path, settings):
    # "http&#10;" parses to "http\n": it must be escaped in the COPY rows like any odd text.
    settings.INGEST_PARALLEL_MIN_BYTES = 0
    path = tmp_path / "newline.xml"
    # A name-only port (no product) travels in the host row's arrays, where only plain names may go.
    odd = REAL.read_text().replace('<service name="tcpwrapped" method="probed"', '<service name="web&#10;"', 1)
    path.write_text(odd)

    with open(path, "rb") as source:
        import_scan_file(source, zone=Zone.default(), name=path.name, path=str(path) if engine == "sql-file" else None)
    assert Service.objects.get(port=41080).name == "web\n"


def test_statistics_that_autovacuum_resets_during_a_long_import_are_set_right_again():
    """Autovacuum cannot see an import's uncommitted rows: analyzing mid-import, it records
    an empty table, and the planner then nests loops over a table of 600k rows (a first
    import of 65k hosts hung for hours). keep_statistics ANALYZEs within the transaction
    and holds the table until commit."""
    import psycopg
    from django.db import connection

    from scans.ingest.postgres.apply import keep_statistics

    now = timezone.now()
    host = Host.objects.create(
        zone=Zone.default(), address="127.62.0.1", first_seen=now, last_seen=now, last_scanned=now
    )
    Service.objects.bulk_create(
        Service(host=host, protocol="tcp", port=port, state="open", first_seen=now, last_seen=now, last_changed=now)
        for port in range(1, 3001)
    )
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)

    def reltuples(cursor) -> float:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'inventory_service'::regclass")
        return cursor.fetchone()[0]

    with psycopg.connect(**params, autocommit=True) as other, connection.cursor() as cursor:
        other.execute("SET lock_timeout = '10s'")
        other.execute("ANALYZE inventory_service")  # what autovacuum does: the rows are not committed
        assert reltuples(cursor) == 0
        keep_statistics(cursor, "inventory_service", "SELECT 3000")
        assert reltuples(cursor) == 3000
        other.execute("ANALYZE (SKIP_LOCKED) inventory_service")  # as autovacuum: it cannot have the table
        assert reltuples(cursor) == 3000


@pytest.mark.sqlite
@pytest.mark.parametrize(
    "sql_engine",
    [pytest.param(True, marks=pytest.mark.postgresql("the SQL engine is PostgreSQL's")), False],
    ids=["sql", "python"],
)
def test_a_file_on_disk_goes_to_either_engine_as_a_file(settings, sql_engine):
    """ingest_file: the SQL engine parses it in parser processes, the ORM engine streams it (SQLite uploads)."""
    settings.INGEST_SQL_ENGINE = sql_engine
    settings.INGEST_PARALLEL_MIN_BYTES = 0
    with open(REAL, "rb") as source:
        run = import_scan_file(source, zone=Zone.default(), name=REAL.name, path=str(REAL))

    assert (run.status, run.hosts_total, run.hosts_up) == (RunStatus.SUCCEEDED, 2, 2)
    assert run.chunks.get().coverage == {"tcp": "41000-41100"}
    assert set(Change.objects.filter(kind=ChangeKind.PORT_OPENED).values_list("host__address", "port")) == {
        ("127.77.9.1", 41022),
        ("127.77.9.1", 41080),
        ("127.77.9.2", 41025),
    }
