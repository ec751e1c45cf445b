"""Remote scanners: signed orders out, signed results in, and nothing written on a message that fails a check.

The end-to-end test starts a real scanner (``manage.py run_scanner``) with
no database settings at all, in the vantage lab's office-lan namespace, and
a real central worker that ingests what it sends back.
"""

import base64
import re
import uuid
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from inventory.models import Zone
from inventory.ports import PortSet
from reach.models import PortView, VantagePoint
from scans import orders, queueing, remote, scanner
from scans.choices import AttemptOutcome, ChunkStatus, RunStatus
from scans.chunks import ChunkOutcome
from scans.models import Change, ScanChunk, ScanProfile, ScanRun, ScanTarget, ScopeRule, WorkerHeartbeat
from scans.profiles import nmap_options, reprobe_options
from scans.services import cancel_run, start_run
from tests.processes import ScannerProcess, WorkerProcess, wait_for
from tests.vantage_lab import HOSTS_NETWORK

KEY = "ab" * 32
ORDER = "0f" * 16
XML = (Path(__file__).parent / "fixtures" / "nmap" / "lab_two_hosts_versions.xml").read_bytes()
# The same scan's XML with its first host only, at the lab's address.
ONE_HOST = re.sub(rb"<host[^>]*>(?:(?!</host>).)*127\.77\.9\.2.*?</host>\n?", b"", XML, flags=re.S).replace(
    b"127.77.9.1", b"198.18.100.2"
)


# --- the messages ----------------------------------------------------------------------------------


def test_a_signature_holds_for_its_purpose_and_its_exact_body_only():
    body = {"v": orders.VERSION, "chunk": 7, "targets": ["198.18.100.2"]}
    signature = orders.sign(orders.ORDER, body, KEY)
    orders.verify(orders.ORDER, body, signature, KEY)
    with pytest.raises(orders.BadMessage, match="not signed"):
        orders.verify(orders.RESULT, body, signature, KEY)  # an order never passes for a result
    with pytest.raises(orders.BadMessage, match="not signed"):
        orders.verify(orders.ORDER, {**body, "targets": ["198.18.100.3"]}, signature, KEY)
    with pytest.raises(orders.BadMessage, match="not signed"):
        orders.verify(orders.ORDER, body, signature, "cd" * 32)
    with pytest.raises(orders.BadMessage, match="no key"):
        orders.verify(orders.ORDER, body, signature, "")


@pytest.mark.django_db
@pytest.mark.sqlite
def test_every_option_list_the_profiles_build_passes_the_scanners_check():
    for profile in ScanProfile.objects.all():
        for privileged in (False, True):
            for ports in (None, PortSet.parse("22,80,8000-8100")):
                orders.check_options(nmap_options(profile, ports, privileged=privileged, host_timeout=900))
            orders.check_options(reprobe_options(profile, PortSet.parse("22"), privileged=privileged, host_timeout=60))


@pytest.mark.parametrize(
    "options",
    [
        ["-sT", "-oN", "/etc/cron.d/x"],
        ["-sT", "-iL", "/etc/shadow"],
        ["-sT", "--script=vuln"],
        ["-sT", "--script=banner", "--script-args", "x=1"],
        ["-sT", "-p", "-oN"],
        ["-sT", "-p"],
        ["-sT", "--host-timeout", "1h;id"],
        ["--resume", "x"],
        "-sT -p 22",
        [1, 2],
    ],
)
def test_the_scanner_refuses_any_option_the_profiles_do_not_build(options):
    with pytest.raises(orders.BadMessage, match=r"refused|not a list"):
        orders.check_options(options)


def test_a_compressed_bomb_is_refused_before_it_is_inflated_whole():
    bomb = base64.b64encode(zlib.compress(b"\0" * (4 << 20))).decode()
    with pytest.raises(orders.BadMessage, match="larger than"):
        orders.unpack(bomb, limit=1 << 20)
    assert orders.unpack(orders.pack(XML)) == XML
    with pytest.raises(orders.BadMessage, match="not readable"):
        orders.unpack("not base64 at all!")


# --- the scanner's checks (no database) ------------------------------------------------------------


@pytest.fixture
def as_scanner(settings, tmp_path):
    settings.SCAN_WORK_DIR = tmp_path
    settings.SCANNER_VANTAGE = "office-lan"
    settings.SCANNER_KEY = KEY
    settings.SCANNER_ALLOWED_NETWORKS = []
    return settings


def signed_order(**changes) -> tuple[dict, str]:
    body = {
        "v": orders.VERSION,
        "chunk": 1,
        "order": uuid.uuid4().hex,
        "run": "r",
        "vantage": "office-lan",
        "targets": ["198.18.100.2"],
        "options": ["-sT", "-p", "22", "-T4"],
        "scope": [["198.18.0.0/15", "allow"], ["198.18.100.9/32", "exclude"]],
        "issued_at": timezone.now().isoformat(),
        "expires_at": orders.expiry(timezone.now(), 60),
        **changes,
    }
    return body, orders.sign(orders.ORDER, body, KEY)


def test_an_order_not_signed_with_the_key_expired_or_carried_out_already_is_dropped_unanswered(as_scanner, monkeypatch):
    body, signature = signed_order()
    assert scanner.carry_out({**body, "targets": ["198.18.100.3"]}, signature, "s1") is None
    expired = signed_order(expires_at=(timezone.now() - timedelta(seconds=1)).isoformat())
    assert scanner.carry_out(*expired, "s1") is None
    monkeypatch.setattr(scanner, "run_nmap", lambda *args, **kwargs: pytest.fail("nmap must not run"))
    refused = signed_order(targets=["127.0.0.1"])
    assert scanner.carry_out(*refused, "s1")[0]["failure"]
    assert scanner.carry_out(*refused, "s1") is None  # the same order again: a replay


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"vantage": "dmz"}, "for vantage point 'dmz'"),
        ({"options": ["-sT", "-oX", "/tmp/x"]}, "refused option '-oX'"),
        ({"targets": ["198.18.100.9"]}, "excluded"),
        ({"targets": ["127.0.0.1"]}, "outside the scan scope"),
        ({"targets": ["-oN"]}, "looks like a command-line option"),
        ({"targets": []}, "nothing to scan"),
        ({"scope": "everything"}, "no scope"),
    ],
)
def test_a_signed_order_the_scanner_may_not_carry_out_is_answered_with_a_failure_and_nmap_never_runs(
    as_scanner, changes, reason, monkeypatch
):
    monkeypatch.setattr(scanner, "run_nmap", lambda *args, **kwargs: pytest.fail("nmap must not run"))
    result, signature = scanner.carry_out(*signed_order(**changes), "s1")
    assert result["failure"]["transient"] is False
    assert reason in result["failure"]["message"]
    orders.verify(orders.RESULT, result, signature, KEY)


def test_the_scanners_own_allowed_networks_win_over_what_an_order_says(as_scanner, monkeypatch):
    as_scanner.SCANNER_ALLOWED_NETWORKS = ["198.18.200.0/24"]
    monkeypatch.setattr(scanner, "run_nmap", lambda *args, **kwargs: pytest.fail("nmap must not run"))
    result, _ = scanner.carry_out(*signed_order(), "s1")
    assert "outside PORTWATCH_SCANNER_ALLOWED_NETWORKS" in result["failure"]["message"]


# --- the centre's checks ----------------------------------------------------------------------------


@pytest.fixture
def office(db):
    return VantagePoint.objects.create(name="office-lan", remote=True)


@pytest.fixture
def chunk(office, monkeypatch):
    monkeypatch.setattr(queueing, "send_on_commit", lambda run, ids: None)
    ScopeRule.objects.create(network=HOSTS_NETWORK, action="allow", reason="test")
    target = ScanTarget.objects.create(
        name="t",
        zone=Zone.default(),
        targets="198.18.100.2",
        ports="41000-41100",
        profile=ScanProfile.objects.get(slug="full"),
    )
    run = start_run(target, vantage=office)
    ScanChunk.objects.filter(run=run).update(order_id=ORDER)  # as queueing.send does
    return run.chunks.get()


def result_for(of, key, **changes) -> tuple[dict, str]:
    body = {
        "v": orders.VERSION,
        "chunk": of.pk,
        "vantage": "office-lan",
        "order": ORDER,
        "scanner": "scanner-office-lan@box",
        "addresses": ["198.18.100.2"],
        "xml": orders.pack(ONE_HOST),
        **changes,
    }
    return body, orders.sign(orders.RESULT, body, key)


@pytest.mark.django_db
def test_the_order_carries_the_chunk_the_vetted_options_and_the_scope_signed_with_the_vantage_points_key(chunk):
    body, signature = remote.order_for(chunk, ORDER)
    orders.verify(orders.ORDER, body, signature, chunk.run.vantage.key)
    assert body["order"] == ORDER
    assert (body["chunk"], body["vantage"], body["targets"]) == (chunk.pk, "office-lan", ["198.18.100.2"])
    assert body["options"] == chunk.run.nmap_options
    assert [HOSTS_NETWORK, "allow"] in body["scope"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "key", "reason"),
    [
        ({}, "cd" * 32, "not signed"),
        ({"vantage": "dmz"}, None, "not scanned by vantage point 'dmz'"),
        ({"addresses": ["198.18.100.3"]}, None, "does not"),
        ({"addresses": "198.18.100.2"}, None, "does not list"),
        ({"addresses": [f"198.18.100.{n}" for n in range(2, 40)]}, None, "names at most 1"),
        ({"order": "1f" * 16}, None, "not chunk .*'s current order"),
        ({"order": None}, None, "current order"),
        ({"xml": orders.pack(XML.replace(b"127.77.9.1", b"198.18.100.2"))}, None, "lists 127.77.9.2, which chunk"),
        ({"xml": orders.pack(b"\0" * 10)}, None, "not nmap's"),
        ({"xml": orders.pack(b" " * (2 << 20))}, None, "larger than"),
        ({"chunk": "1"}, None, "not a signed result"),
    ],
)
def test_a_result_that_fails_a_check_writes_nothing(chunk, changes, key, reason):
    body, signature = result_for(chunk, key or chunk.run.vantage.key, **changes)
    with pytest.raises(orders.BadMessage, match=reason):
        remote.accept_result(body, signature)
    assert ScanChunk.objects.get(pk=chunk.pk).status == ChunkStatus.QUEUED
    assert not PortView.objects.exists() and not Change.objects.exists()


@pytest.mark.django_db
def test_a_result_delivered_twice_is_ingested_once_and_a_replay_is_refused(chunk):
    answer = result_for(chunk, chunk.run.vantage.key)
    assert remote.accept_result(*answer) is ChunkOutcome.DONE
    changes = Change.objects.count()
    assert changes and PortView.objects.filter(vantage__name="office-lan", state="open").exists()
    with pytest.raises(orders.BadMessage, match="current order"):
        remote.accept_result(*answer)
    assert Change.objects.count() == changes
    assert list(chunk.tries.values_list("outcome", flat=True)) == [AttemptOutcome.SUCCEEDED]
    assert ScanRun.objects.get(pk=chunk.run_id).status == RunStatus.SUCCEEDED


@pytest.mark.django_db
def test_a_scanners_transient_failure_is_tried_again_and_a_cancelled_runs_result_is_dropped(chunk):
    failure = {"message": "nmap was killed by signal 9", "transient": True}
    answer = result_for(chunk, chunk.run.vantage.key, xml=None, failure=failure)
    remote.accept_result(*answer)
    chunk.refresh_from_db()
    assert (chunk.status, chunk.retry_at is not None) == (ChunkStatus.QUEUED, True)
    assert "signal 9" in chunk.tries.get().error
    # The same failure replayed (by anyone who copied it off the broker) fails nothing more.
    with pytest.raises(orders.BadMessage, match="current order"):
        remote.accept_result(*answer)
    assert chunk.tries.count() == 1

    ScanChunk.objects.filter(pk=chunk.pk).update(order_id=ORDER)  # the sweep's next order
    cancel_run(chunk.run)
    assert remote.accept_result(*result_for(chunk, chunk.run.vantage.key)) is ChunkOutcome.DONE
    assert not Change.objects.exists()


@pytest.mark.django_db
def test_a_heartbeat_signed_by_the_scanner_counts_as_a_worker_of_its_queue_and_a_forged_one_does_not(office):
    def beat(**changes):
        body = {"v": orders.VERSION, "vantage": "office-lan", "scanner": "scanner-office-lan@box", "stopping": False,
                "at": timezone.now().isoformat(), **changes}  # fmt: skip
        return body, orders.sign(orders.HEARTBEAT, body, changes.pop("key", office.key))

    with pytest.raises(orders.BadMessage):
        remote.accept_heartbeat(beat()[0], orders.sign(orders.HEARTBEAT, beat()[0], "cd" * 32))
    with pytest.raises(orders.BadMessage, match="too far from now"):
        remote.accept_heartbeat(*beat(at=(timezone.now() - timedelta(hours=1)).isoformat()))
    assert not WorkerHeartbeat.objects.exists()
    remote.accept_heartbeat(*beat())
    row = WorkerHeartbeat.objects.get()
    assert (row.name, row.queues) == ("office-lan:scanner-office-lan@box", ["scan-from.office-lan"])
    # A scanner cannot take over (or stop) a central worker's row, whatever name it gives.
    central = WorkerHeartbeat.objects.create(name="office-lan:celery@centre", queues=["default"])
    with pytest.raises(orders.BadMessage, match="not this vantage point's"):
        remote.accept_heartbeat(*beat(scanner="celery@centre"))
    remote.accept_heartbeat(*beat(scanner="celery@centre", stopping=True))
    assert WorkerHeartbeat.objects.filter(pk=central.pk, queues=["default"]).exists()
    remote.accept_heartbeat(*beat(stopping=True, scanner="scanner-office-lan@box<script>"))
    remote.accept_heartbeat(*beat(stopping=True))
    assert list(WorkerHeartbeat.objects.values_list("name", flat=True)) == ["office-lan:celery@centre"]


@pytest.mark.django_db
def test_a_central_worker_never_scans_a_remote_vantage_points_chunk_or_one_from_another_queue(chunk, monkeypatch):
    from scans import chunks

    monkeypatch.setattr(chunks, "run_nmap", lambda *args, **kwargs: pytest.fail("nmap must not run"))
    assert chunks.run_chunk(chunk.pk, worker="celery@centre") is ChunkOutcome.DONE
    local = start_run(chunk.run.target, vantage=VantagePoint.objects.create(name="dc1-app")).chunks.get()
    assert chunks.run_chunk(local.pk, worker="celery@centre", queue="scan.default") is ChunkOutcome.DONE
    assert ScanChunk.objects.filter(pk__in=[chunk.pk, local.pk], status=ChunkStatus.QUEUED).count() == 2
    assert not Change.objects.exists()


@pytest.mark.django_db
def test_scanner_key_prints_rotates_and_refuses_a_local_vantage_point(capsys):
    local = VantagePoint.objects.create(name="dc1-app")
    with pytest.raises(CommandError, match="not a remote vantage point"):
        call_command("scanner_key", "dc1-app")
    call_command("scanner_key", "dc1-app", "--remote")
    first = capsys.readouterr().out.strip()
    local.refresh_from_db()
    assert local.remote and local.key == first and len(first) == 64
    call_command("scanner_key", "dc1-app", "--rotate")
    assert capsys.readouterr().out.strip() not in ("", first)


def test_run_scanner_refuses_to_start_with_a_database():
    with pytest.raises(CommandError, match="PORTWATCH_SCANNER_ONLY=1"):
        call_command("run_scanner")


# --- for real: a scanner without database settings, a central worker ------------------------------


@pytest.mark.netns
@pytest.mark.postgresql("real workers")
@pytest.mark.django_db(transaction=True)
def test_a_remote_scanner_with_no_database_scans_from_its_segment_and_the_centre_ingests(tmp_path, vantage_lab):
    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).flushdb()
    ScopeRule.objects.create(network=HOSTS_NETWORK, action="allow", reason="vantage lab")
    host = vantage_lab.addresses[0]
    vantage_lab.listen(host, 41022, 41080)
    vantage_lab.drop(41022, host=host, from_vantage="office-lan")
    office = VantagePoint.objects.create(name="office-lan", remote=True)
    target = ScanTarget.objects.create(
        name="from the office",
        zone=Zone.default(),
        targets=host,
        ports="41000-41100",
        profile=ScanProfile.objects.get(slug="quick"),
    )
    scanner_var = tmp_path / "scanner-var"
    scanner_var.mkdir()
    processes = [
        ScannerProcess(
            tmp_path / "scanner.log",
            scanner_var,
            vantage="office-lan",
            key=office.key,
            NMAP_PATH=vantage_lab.nmap_path("office-lan"),
        ),
        WorkerProcess(tmp_path / "central.log", "--concurrency=1"),
    ]
    try:
        wait_for(
            lambda: WorkerHeartbeat.objects.filter(queues=["scan-from.office-lan"]).exists(),
            30,
            message=f"the scanner's heartbeat:\n{processes[0].log()[-2000:]}",
        )
        run = start_run(target, vantage=office)
        logs = lambda: "\n".join(process.log()[-2000:] for process in processes)  # noqa: E731
        wait_for(lambda: ScanRun.objects.get(pk=run.pk).is_terminal, 90, message=f"the run:\n{logs()}")
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED, run.error
        seen = dict(PortView.objects.filter(vantage=office).values_list("port", "state"))
        assert seen == {41080: "open"}  # 41022 is filtered from the office: never seen open from there
        assert run.chunks.get().tries.get().worker.startswith("scanner-office-lan@")
        # It never had a database: no SQLite file appeared where the embedded default would put it.
        assert not list(scanner_var.rglob("*.sqlite3*"))
    finally:
        for process in processes:
            process.stop()
    assert "ImproperlyConfigured" not in processes[0].log()
