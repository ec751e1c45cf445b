"""Runs that survive: a worker killed mid-chunk, a cancel, two beats, zone shards.

Real Celery workers and beats on Redis, real nmap on loopback listeners.
"""

import os
import signal
import subprocess
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.models import Zone
from scans.choices import ChangeKind, ChunkStatus, RunStatus, Trigger
from scans.models import Change, ScanChunk, ScanProfile, ScanRun, ScanTarget
from scans.services import start_run
from tests.conftest import WorkerProcess, wait_for
from tests.lab import LAB_PORT_SPEC, LAB_PORTS
from tests.processes import BeatProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.lab]


def nmap_processes(pattern: str) -> list[str]:
    """PIDs of nmap processes whose command line contains ``pattern``."""
    out = subprocess.run(["pgrep", "-f", f"nmap.*{pattern}"], capture_output=True, text=True).stdout
    return out.split()


def refreshed(obj):
    obj.refresh_from_db()
    return obj


@pytest.fixture
def flush_redis():
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


def slow_target(lab, hosts=8, **fields):
    """All 65,535 ports of several loopback hosts: long enough to interrupt."""
    return ScanTarget.objects.create(
        name=fields.pop("name", "slow"),
        zone=fields.pop("zone", None) or Zone.default(),
        targets=f"{lab.address(1)}-{hosts}",
        ports="1-65535",
        profile=ScanProfile.objects.get(slug="quick"),
        **fields,
    )


def test_a_worker_killed_mid_chunk_is_replaced_and_the_chunk_ingested_once(lab, flush_redis, tmp_path):
    lab.open(1, 41022)
    lab.open(2, 41080)
    target = slow_target(lab)
    worker = WorkerProcess(tmp_path / "worker.log")
    try:
        run = start_run(target)
        chunk = run.chunks.get()
        wait_for(
            lambda: refreshed(chunk).status == ChunkStatus.RUNNING and nmap_processes(f"chunk-{chunk.pk}-1/"),
            30,
            message="nmap to start",
        )
        os.kill(chunk.pid, signal.SIGKILL)

        wait_for(lambda: refreshed(run).is_terminal, 120, message=f"the run to finish:\n{worker.log()}")
        assert run.status == RunStatus.SUCCEEDED, run.error
        chunk.refresh_from_db()
        assert chunk.attempts == 2
        assert nmap_processes(f"chunk-{chunk.pk}-1/") == []
        # The scan covers all ports: count only the lab's (the machine may
        # have services listening on every address).
        opened = Change.objects.filter(run=run, kind=ChangeKind.PORT_OPENED, port__in=LAB_PORTS)
        assert sorted(opened.values_list("host__address", "port")) == sorted(lab.expected())
        assert Change.objects.filter(run=run, kind=ChangeKind.HOST_DISCOVERED).count() == 8
    finally:
        worker.stop()


def test_cancelling_a_run_stops_nmap_and_concludes_nothing(lab, flush_redis, tmp_path, admin, client):
    lab.open(1, 41022)
    target = slow_target(lab)
    worker = WorkerProcess(tmp_path / "worker.log")
    try:
        run = start_run(target)
        chunk = run.chunks.get()
        wait_for(lambda: nmap_processes(f"chunk-{chunk.pk}-"), 30, message="nmap to start")
        client.force_login(admin)

        client.post(reverse("run-cancel", args=[run.public_id]))

        wait_for(lambda: refreshed(run).is_terminal, 30, message=f"the run to stop:\n{worker.log()}")
        assert run.status == RunStatus.CANCELLED
        assert refreshed(chunk).status == ChunkStatus.CANCELLED
        assert nmap_processes(f"chunk-{chunk.pk}-") == []
        assert not Change.objects.filter(run=run).exists()
    finally:
        worker.stop()


def test_two_beat_processes_start_each_slot_once(lab, flush_redis, tmp_path):
    lab.open(1, 41022)
    targets = [
        ScanTarget.objects.create(
            name=f"scheduled {index}",
            zone=Zone.default(),
            targets=lab.address(index),
            ports=LAB_PORT_SPEC,
            profile=ScanProfile.objects.get(slug="quick"),
            schedule_kind="interval",
            schedule_interval=60,
            next_run_at=timezone.now(),
        )
        for index in range(1, 5)
    ]
    worker = WorkerProcess(tmp_path / "worker.log")
    beats = [
        BeatProcess(tmp_path / f"beat{n}.log", "--schedule", str(tmp_path / f"beat{n}"), SCHEDULER_TICK_SECONDS="1")
        for n in range(2)
    ]
    try:
        for slot in range(2):
            wait_for(
                lambda slot=slot: ScanRun.objects.filter(trigger=Trigger.SCHEDULE).count() == 4 * (slot + 1),
                60,
                message=f"runs of slot {slot}:\n{worker.log()}",
            )
            wait_for(lambda: not ScanRun.objects.exclude(status__in=["succeeded"]).exists(), 60, message="runs")
            time.sleep(3)  # both beats tick several more times: nothing new may start
            for target in targets:
                assert target.runs.count() == slot + 1
            # The next slot comes due for every target at once.
            ScanTarget.objects.update(next_run_at=timezone.now())
        slots = ScanRun.objects.values_list("target_id", "schedule_slot")
        assert len(set(slots)) == len(slots) == 8
    finally:
        for beat in beats:
            beat.stop()
        worker.stop()


def test_a_run_is_sharded_across_two_workers(lab, flush_redis, tmp_path, settings):
    settings.SCAN_CHUNK_SIZE = 2
    for host in range(1, 9):
        lab.open(host, 41022)
    target = slow_target(lab)
    workers = [WorkerProcess(tmp_path / f"w{n}.log", f"--name=central{n}", "--concurrency=1") for n in range(2)]
    try:
        run = start_run(target)
        wait_for(lambda: refreshed(run).is_terminal, 120, message="the run to finish")
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.chunks.count() == 4
        used = {worker.split("@")[0] for worker in run.chunks.values_list("worker", flat=True)}
        assert used == {"central0", "central1"}
        assert Change.objects.filter(run=run, kind=ChangeKind.PORT_OPENED, port__in=LAB_PORTS).count() == 8
    finally:
        for worker in workers:
            worker.stop()


def test_zone_workers_scan_only_their_zone(lab, flush_redis, tmp_path):
    east = Zone.objects.create(name="east", central=False)
    west = Zone.objects.create(name="west", central=False)
    lab.open(1, 41022)
    lab.open(2, 41080)
    profile = ScanProfile.objects.get(slug="quick")
    targets = {
        zone.name: ScanTarget.objects.create(
            name=zone.name, zone=zone, targets=lab.address(host), ports=LAB_PORT_SPEC, profile=profile
        )
        for zone, host in ((east, 1), (west, 2))
    }
    workers = [WorkerProcess(tmp_path / f"{name}.log", f"--zone={name}") for name in ("east", "west")]
    try:
        runs = {name: start_run(target) for name, target in targets.items()}
        for name, run in runs.items():
            wait_for(lambda run=run: refreshed(run).is_terminal, 60, message=f"run in {name}")
            assert run.status == RunStatus.SUCCEEDED, run.error
            assert run.chunks.get().worker.startswith(f"zone-{name}@")
        assert Change.objects.get(run=runs["east"], kind=ChangeKind.PORT_OPENED).port == 41022
        assert Change.objects.get(run=runs["west"], kind=ChangeKind.PORT_OPENED).port == 41080
    finally:
        for worker in workers:
            worker.stop()


def test_a_central_worker_never_takes_a_zone_only_zone(lab, flush_redis, tmp_path):
    inside = Zone.objects.create(name="inside", central=False)
    lab.open(1, 41022)
    target = ScanTarget.objects.create(
        name="inside",
        zone=inside,
        targets=lab.address(1),
        ports=LAB_PORT_SPEC,
        profile=ScanProfile.objects.get(slug="quick"),
    )
    worker = WorkerProcess(tmp_path / "central.log")
    try:
        run = start_run(target)
        time.sleep(5)
        assert refreshed(run).status == RunStatus.QUEUED
        assert ScanChunk.objects.get(run=run).attempts == 0
    finally:
        worker.stop()
    zone_worker = WorkerProcess(tmp_path / "zone.log", "--zone=inside")
    try:
        wait_for(lambda: refreshed(run).is_terminal, 60, message="the zone worker to take the run")
        assert run.status == RunStatus.SUCCEEDED
    finally:
        zone_worker.stop()
