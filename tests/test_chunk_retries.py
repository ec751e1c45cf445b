"""A chunk whose attempt fails for a reason that may pass is tried again; a definite error is not.

Real nmap throughout: killed with SIGKILL while a real worker runs it (as
the OOM killer would), refusing an option it does not know, and killed by a
signal on every try until the chunk gives up. A failed attempt concludes
nothing; every attempt and its error is on the run page and in the API.
"""

import os
import signal
import socket
import subprocess
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.models import Zone
from scans import chunks, failures, queueing
from scans.choices import AttemptOutcome, ChangeKind, ChunkStatus, RunStatus
from scans.models import Change, ScanProfile, ScanRun, ScanTarget
from scans.services import start_run
from scans.sweep import sweep
from tests.conftest import WorkerProcess, wait_for
from tests.lab import LAB_PORT_SPEC
from tests.processes import BeatProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.lab]

GUARD = os.path.join(os.path.dirname(__file__), "nmap_guard.py")


def refreshed(obj):
    obj.refresh_from_db()
    return obj


def nmap_pids(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"nmap.*{pattern}"], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def wrapper(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def lab_target(lab, **fields) -> ScanTarget:
    return ScanTarget.objects.create(
        name=fields.pop("name", "lab"),
        zone=fields.pop("zone", None) or Zone.default(),
        targets=fields.pop("targets", lab.address(1)),
        ports=fields.pop("ports", LAB_PORT_SPEC),
        profile=fields.pop("profile", None) or ScanProfile.objects.get(slug="quick"),
        **fields,
    )


def queued_run(target) -> ScanRun:
    """A run whose chunk is in the database but was not handed to any broker (the test runs it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(queueing, "send_on_commit", lambda zone, ids: None)
        return start_run(target)


# --- what is worth trying again --------------------------------------------------------------


def test_death_by_signal_and_resource_errors_are_transient_option_errors_are_not():
    killed = failures.nmap_exit(-9, "")
    assert killed.transient
    assert "killed by signal 9 (SIGKILL)" in killed.message
    assert failures.nmap_exit(1, "socket troubles: Too many open files").transient
    assert failures.nmap_exit(2, "Cannot allocate memory").transient
    refused = failures.nmap_exit(255, "nmap: unrecognized option '--bogus'\nQUITTING!")
    assert not refused.transient
    assert "nmap exited with status 255: nmap: unrecognized option" in refused.message
    assert failures.resolution("db.example.org", socket.gaierror(socket.EAI_AGAIN, "Temporary failure")).transient
    assert not failures.resolution("nope.example.org", socket.gaierror(socket.EAI_NONAME, "Name unknown")).transient


def test_back_off_doubles_and_is_capped(settings):
    settings.SCAN_CHUNK_RETRY_SECONDS = 30
    settings.SCAN_CHUNK_RETRY_MAX_SECONDS = 100
    assert [chunks.retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


# --- real nmap, real failures ------------------------------------------------------------------


def test_nmap_killed_mid_scan_is_tried_again_and_ingested_once(lab, tmp_path):
    for host in (1, 2):
        lab.open(host, 41022)
    polite = ScanProfile.objects.create(slug="polite", name="Polite", timing="T2", port_scope="top", top_ports=30)
    target = lab_target(lab, targets=f"{lab.address(1)}-2", ports="41000-41029", profile=polite)
    env = {"SCAN_CHUNK_RETRY_SECONDS": "1", "SCHEDULER_TICK_SECONDS": "1"}
    worker = WorkerProcess(tmp_path / "worker.log", **env)
    beat = BeatProcess(tmp_path / "beat.log", **env)
    try:
        run = start_run(target)
        chunk = run.chunks.get()
        pids = wait_for(lambda: nmap_pids(f"chunk-{chunk.pk}-1/"), 30, message="nmap to start")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)  # what the OOM killer does

        wait_for(lambda: refreshed(run).is_terminal, 90, message=f"the run to finish:\n{worker.log()[-3000:]}")
        assert run.status == RunStatus.SUCCEEDED, run.error
        chunk.refresh_from_db()
        assert chunk.attempts == 2
        tries = list(chunk.tries.values_list("number", "outcome", "error"))
        assert [(number, outcome) for number, outcome, _ in tries] == [
            (1, AttemptOutcome.RETRY),
            (2, AttemptOutcome.SUCCEEDED),
        ]
        assert "nmap was killed by signal 9 (SIGKILL)" in tries[0][2]
        opened = Change.objects.filter(run=run, kind=ChangeKind.PORT_OPENED)
        assert sorted(opened.values_list("host__address", "port")) == [(lab.address(1), 41022), (lab.address(2), 41022)]
    finally:
        beat.stop()
        worker.stop()


def test_nmap_refusing_its_options_fails_at_once(lab, tmp_path, settings):
    lab.open(1, 41022)
    settings.NMAP_PATH = wrapper(tmp_path, "nmap", f'exec {GUARD} --no-such-option "$@"')
    run = queued_run(lab_target(lab))
    chunk = run.chunks.get()

    assert chunks.run_chunk(chunk.pk) is chunks.ChunkOutcome.DONE

    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.FAILED
    assert chunk.attempts == 1
    assert chunk.retry_at is None
    assert "nmap exited with status 255" in chunk.error and "no-such-option" in chunk.error
    assert refreshed(run).status == RunStatus.FAILED
    assert not Change.objects.filter(run=run).exists()


def test_a_chunk_killed_on_every_try_gives_up_and_concludes_nothing(lab, tmp_path, settings, as_viewer):
    lab.open(1, 41022)
    settings.SCAN_CHUNK_MAX_ATTEMPTS = 3
    settings.SCAN_CHUNK_RETRY_SECONDS = 60
    settings.NMAP_PATH = wrapper(tmp_path, "nmap", 'echo "nmap: <b>mmap</b> failed" >&2; kill -KILL $$')
    run = queued_run(lab_target(lab))
    chunk = run.chunks.get()

    for attempt in (1, 2):
        assert chunks.run_chunk(chunk.pk) is chunks.ChunkOutcome.DONE
        chunk.refresh_from_db()
        assert (chunk.status, chunk.attempts) == (ChunkStatus.QUEUED, attempt)
        assert chunk.retry_at > timezone.now() + timedelta(seconds=50)
        # Too early: an early copy of the task waits, the sweep does not send it yet.
        assert chunks.run_chunk(chunk.pk) is chunks.ChunkOutcome.WAITING
        sweep()
        assert refreshed(chunk).sent_at is None
        # The back-off has passed: the sweep sends it (its task is run here).
        chunk.retry_at = timezone.now() - timedelta(seconds=1)
        chunk.save(update_fields=["retry_at"])
    assert chunks.run_chunk(chunk.pk) is chunks.ChunkOutcome.DONE

    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.FAILED
    assert chunk.error.startswith("Gave up after 3 attempts. The last error: nmap was killed by signal 9 (SIGKILL)")
    assert list(chunk.tries.values_list("outcome", flat=True)) == [
        AttemptOutcome.RETRY,
        AttemptOutcome.RETRY,
        AttemptOutcome.FAILED,
    ]
    assert refreshed(run).status == RunStatus.FAILED
    assert run.hosts_done == run.hosts_total
    assert not Change.objects.filter(run=run).exists()

    page = as_viewer.get(reverse("run-detail", args=[run.public_id])).content.decode()
    assert "3 attempts of chunk 0" in page
    assert page.count("nmap was killed by signal 9 (SIGKILL)") >= 3
    assert "&lt;b&gt;mmap&lt;/b&gt;" in page and "<b>mmap</b>" not in page
    detail = as_viewer.get(f"/api/runs/{run.public_id}/")
    tries = detail.json()["chunks"][0]["tries"]
    assert [entry["outcome"] for entry in tries] == ["retry", "retry", "failed"]


def test_the_sweep_sends_a_chunk_once_its_back_off_has_passed(lab, tmp_path, settings):
    import redis

    lab.open(1, 41022)
    settings.NMAP_PATH = wrapper(tmp_path, "nmap", "kill -KILL $$")
    run = queued_run(lab_target(lab))
    chunk = run.chunks.get()
    chunks.run_chunk(chunk.pk)
    assert refreshed(chunk).status == ChunkStatus.QUEUED
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()

    sweep()
    assert refreshed(chunk).sent_at is None
    assert broker.llen("scan.default") == 0
    sweep(now=chunk.retry_at + timedelta(seconds=1))
    assert refreshed(chunk).sent_at is not None
    assert broker.llen("scan.default") == 1
