"""The broker fails: Redis restarts (without persistence, as many installs run it) or is flushed.

Real processes on a Redis server the test owns and restarts: a central
worker with a scan running, the alert worker, beat and gunicorn. Nothing
accepted is lost or recorded twice, and everything is healthy again soon
after Redis is back.
"""

import time

import pytest
import redis
import requests
from rest_framework.authtoken.models import Token

from inventory.models import Zone
from scans.choices import ChangeKind, ChunkStatus, RunStatus
from scans.models import Change, ScanChunk, ScanProfile, ScanRun, ScanTarget
from scans.services import start_run
from tests.conftest import WorkerProcess, wait_for
from tests.lab import LAB_PORT_SPEC
from tests.processes import BeatProcess, RedisProcess, WebProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.lab]

TICK = "2"  # seconds between beat's ticks (the sweep runs on each)


def refreshed(obj):
    obj.refresh_from_db()
    return obj


def polite_profile() -> ScanProfile:
    """nmap's polite timing waits 0.4 s between probes: 30 ports take about 12 s, long enough to interrupt."""
    return ScanProfile.objects.create(slug="polite", name="Polite", timing="T2", port_scope="top", top_ports=30)


def api(web: WebProcess, token: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method, f"{web.url}{path}", headers={"Authorization": f"Token {token}"}, timeout=30, **kwargs
    )


def healthy(web: WebProcess, token: str, last: list) -> bool:
    try:
        response = api(web, token, "get", "/health")
    except requests.RequestException as error:
        last[:] = [str(error)]
        return False
    last[:] = [response.text]
    return response.status_code == 200


def test_every_process_rides_out_a_redis_restart_and_nothing_is_lost_or_doubled(lab, tmp_path, admin):
    broker = RedisProcess(tmp_path)
    env = {"REDIS_URL": broker.url, "SCHEDULER_TICK_SECONDS": TICK}
    token = Token.objects.create(user=admin).key
    for host in (1, 2):
        lab.open(host, 41022)
        lab.open(host, 41023)
    lab.open(4, 41080)
    dmz = Zone.objects.create(name="dmz", central=False)
    slow = ScanTarget.objects.create(
        name="slow",
        zone=Zone.default(),
        targets=f"{lab.address(1)}-2",
        ports="41000-41029",
        profile=polite_profile(),
    )
    quick = ScanProfile.objects.get(slug="quick")
    inside = ScanTarget.objects.create(name="inside", zone=dmz, targets=lab.address(3), ports="41022", profile=quick)
    during = ScanTarget.objects.create(
        name="during", zone=Zone.default(), targets=lab.address(4), ports=LAB_PORT_SPEC, profile=quick
    )
    processes = []
    try:
        worker = WorkerProcess(tmp_path / "central.log", **env)
        processes.append(worker)
        alerts = WorkerProcess(tmp_path / "alerts.log", "--alerts", "--concurrency=1", **env)
        processes.append(alerts)
        beat = BeatProcess(tmp_path / "beat.log", **env)
        processes.append(beat)
        web = WebProcess(tmp_path / "web.log", **env)
        processes.append(web)

        # A scan that is running, and one queued for a zone whose worker is not started yet.
        slow_run = ScanRun.objects.get(
            public_id=api(web, token, "post", "/api/runs/", json={"target": str(slow.public_id)}).json()["id"]
        )
        inside_run = ScanRun.objects.get(
            public_id=api(web, token, "post", "/api/runs/", json={"target": str(inside.public_id)}).json()["id"]
        )
        chunk = slow_run.chunks.get()
        wait_for(
            lambda: refreshed(chunk).status == ChunkStatus.RUNNING, 30, message=f"the scan to start:\n{worker.log()}"
        )
        assert inside_run.chunks.get().sent_at is not None

        broker.stop()
        # "Scan now" while the broker is down: the run is accepted, its task not sent.
        response = api(web, token, "post", "/api/runs/", json={"target": str(during.public_id)})
        assert response.status_code == 201, response.text
        during_run = ScanRun.objects.get(public_id=response.json()["id"])
        assert during_run.chunks.get().sent_at is None
        assert refreshed(chunk).status == ChunkStatus.RUNNING  # nmap keeps going
        broker.start()
        back = time.monotonic()
        # The dmz segment's worker starts only now: the chunk queued for it went with Redis's memory.
        zone_worker = WorkerProcess(tmp_path / "dmz.log", "--zone=dmz", **env)
        processes.append(zone_worker)

        last_health = []
        wait_for(lambda: healthy(web, token, last_health), 60, message=f"/health to pass again: {last_health}")
        recovered_in = time.monotonic() - back
        for process in processes:
            assert process.process.poll() is None, f"{process.log_path.name} exited:\n{process.log()[-3000:]}"

        # The running scan finished once, in its first attempt, and was ingested once.
        wait_for(lambda: refreshed(slow_run).is_terminal, 120, message=f"the slow run:\n{worker.log()[-3000:]}")
        assert slow_run.status == RunStatus.SUCCEEDED, slow_run.error
        assert refreshed(chunk).attempts == 1
        opened = Change.objects.filter(run=slow_run, kind=ChangeKind.PORT_OPENED)
        assert sorted(opened.values_list("host__address", "port")) == sorted(
            (lab.address(host), port) for host in (1, 2) for port in (41022, 41023)
        )
        # The run started while Redis was down is sent by beat's sweep.
        wait_for(
            lambda: refreshed(during_run).is_terminal,
            60,
            message=f"the run started during the outage:\n{beat.log()[-2000:]}",
        )
        assert during_run.status == RunStatus.SUCCEEDED, during_run.error
        assert Change.objects.filter(run=during_run, kind=ChangeKind.PORT_OPENED).count() == 1

        # Redis forgot the queued zone chunk; it is sent again, not after the 72-minute visibility timeout.
        wait_for(lambda: refreshed(inside_run).is_terminal, 60, message=f"the dmz run:\n{zone_worker.log()[-2000:]}")
        assert inside_run.status == RunStatus.SUCCEEDED, inside_run.error
        assert "Unrecoverable error" not in worker.log() + alerts.log() + zone_worker.log()
        print(f"health green {recovered_in:.1f} s after Redis came back")
    finally:
        for process in reversed(processes):
            process.stop()
        broker.stop()


def test_queued_chunks_a_flushed_broker_forgot_are_sent_again(lab, tmp_path, settings):
    """FLUSHALL (or a restart without persistence) empties the queues: the sweep notices and sends again."""
    settings.SCAN_CHUNK_SIZE = 1
    outside = Zone.objects.create(name="branch", central=False)
    lab.open(1, 41022)
    target = ScanTarget.objects.create(
        name="branch",
        zone=outside,
        targets=f"{lab.address(1)}-3",
        ports=LAB_PORT_SPEC,
        profile=ScanProfile.objects.get(slug="quick"),
    )
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    run = start_run(target)
    wait_for(lambda: ScanChunk.objects.filter(run=run, sent_at__isnull=False).count() == 3, 10, message="sends")
    assert client.llen("scan.branch") == 3
    client.flushall()

    # The scheduler's tick runs on a central worker; the zone's own worker scans.
    processes = [
        WorkerProcess(tmp_path / "branch.log", "--zone=branch"),
        WorkerProcess(tmp_path / "central.log"),
        BeatProcess(tmp_path / "beat.log", SCHEDULER_TICK_SECONDS=TICK),
    ]
    try:
        wait_for(lambda: refreshed(run).is_terminal, 60, message=f"the run:\n{processes[0].log()[-2000:]}")
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert Change.objects.filter(run=run, kind=ChangeKind.PORT_OPENED).count() == 1
        assert set(run.chunks.values_list("attempts", flat=True)) == {1}
    finally:
        for process in processes:
            process.stop()
