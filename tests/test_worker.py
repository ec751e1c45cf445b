"""The whole loop through a real Celery worker on Redis: "scan now" to changes."""

import pytest
from django.urls import reverse

from inventory.choices import PortState
from inventory.models import Service, Zone
from scans.choices import ChangeKind, RunStatus, Trigger
from scans.models import Change, ScanProfile, ScanRun, ScanTarget
from scans.services import enqueue_due_runs
from tests.conftest import wait_for
from tests.lab import LAB_PORT_SPEC
from tests.processes import BeatProcess, WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.lab]


def finished(run):
    run.refresh_from_db()
    return run.is_terminal


def test_scan_now_runs_on_a_real_worker_and_records_changes(celery_worker, lab, admin, client):
    lab.open(1, 41022)
    lab.open(2, 41080)
    target = ScanTarget.objects.create(
        name="lab",
        zone=Zone.default(),
        targets=f"{lab.address(1)}\n{lab.address(2)}",
        ports=LAB_PORT_SPEC,
        profile=ScanProfile.objects.get(slug="quick"),
    )
    client.force_login(admin)

    response = client.post(reverse("target-scan", args=[target.public_id]))

    run = ScanRun.objects.get(target=target)
    assert response.status_code == 302 and response.url == run.get_absolute_url()
    wait_for(lambda: finished(run), 60, message=f"run to finish; worker log:\n{celery_worker.log()}")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.chunks.get().worker.startswith("central@")
    opened = set(Change.objects.filter(run=run, kind=ChangeKind.PORT_OPENED).values_list("host__address", "port"))
    assert opened == lab.expected()

    lab.close(2, 41080)
    client.post(reverse("target-scan", args=[target.public_id]))
    second = ScanRun.objects.exclude(pk=run.pk).get(target=target)
    wait_for(lambda: finished(second), 60, message="second run")
    assert set(Change.objects.filter(run=second).values_list("kind", "port")) == {(ChangeKind.PORT_CLOSED, 41080)}
    assert Service.objects.get(port=41080).state == PortState.CLOSED


def test_due_schedule_starts_exactly_one_run(celery_worker, lab):
    lab.open(1, 41022)
    target = ScanTarget.objects.create(
        name="scheduled",
        zone=Zone.default(),
        targets=lab.address(1),
        ports=LAB_PORT_SPEC,
        profile=ScanProfile.objects.get(slug="quick"),
        schedule_kind="interval",
        schedule_interval=60,
    )
    ScanTarget.objects.filter(pk=target.pk).update(next_run_at=target.created_at)

    first = enqueue_due_runs()
    again = enqueue_due_runs()

    assert len(first) == 1 and again == []
    run = first[0]
    assert run.trigger == Trigger.SCHEDULE
    wait_for(lambda: finished(run), 60, message="scheduled run")
    assert run.status == RunStatus.SUCCEEDED
    target.refresh_from_db()
    assert target.next_run_at > run.created_at


def test_a_slot_that_comes_while_the_last_run_is_going_is_skipped_and_noted(caplog):
    target = ScanTarget.objects.create(
        name="busy",
        zone=Zone.default(),
        targets="127.0.0.1",
        profile=ScanProfile.objects.get(slug="quick"),
        schedule_kind="interval",
        schedule_interval=5,
    )
    ScanRun.objects.create(
        target=target, zone=target.zone, trigger=Trigger.SCHEDULE, targets="127.0.0.1", status=RunStatus.RUNNING
    )
    slot = target.created_at
    ScanTarget.objects.filter(pk=target.pk).update(next_run_at=slot)

    assert enqueue_due_runs() == []

    target.refresh_from_db()
    assert target.last_skipped_slot == slot
    assert target.next_run_at > slot
    assert target.runs.count() == 1
    assert "skipped" in caplog.text


# Variables `celery` reads as its own options: APP as -A, BROKER_URL as -b (over the settings).
STRAY_CELERY_VARIABLES = {"APP": "bogus_app", "BROKER_URL": "redis://127.0.0.1:1/0", "CONFIG_MODULE": "nowhere"}


def test_worker_and_beat_ignore_celery_variables_the_environment_holds_for_something_else(lab, tmp_path):
    """A deployment's APP or BROKER_URL belongs to something else: run_worker and run_beat
    (the Procfile's and docker-compose's commands) still start PortWatch's app on its own broker."""
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    lab.open(1, 41022)
    target = ScanTarget.objects.create(
        name="scheduled",
        zone=Zone.default(),
        targets=lab.address(1),
        ports=LAB_PORT_SPEC,
        profile=ScanProfile.objects.get(slug="quick"),
        schedule_kind="interval",
        schedule_interval=60,
    )
    ScanTarget.objects.filter(pk=target.pk).update(next_run_at=target.created_at)
    worker = WorkerProcess(tmp_path / "worker.log", **STRAY_CELERY_VARIABLES)  # waits until it is ready
    beat = BeatProcess(
        tmp_path / "beat.log",
        "--schedule",
        str(tmp_path / "beat"),
        SCHEDULER_TICK_SECONDS="1",
        **STRAY_CELERY_VARIABLES,
    )
    try:
        # beat's tick goes through the broker to the worker, which starts the due run and scans.
        run = wait_for(lambda: ScanRun.objects.filter(target=target).first(), 60, message=f"a run:\n{beat.log()}")
        wait_for(lambda: finished(run), 60, message=f"the run:\n{worker.log()}")
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert "bogus_app" not in worker.log() + beat.log() and "127.0.0.1:1/" not in worker.log() + beat.log()
    finally:
        beat.stop()
        worker.stop()
