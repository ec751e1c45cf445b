"""Two vantage points scanning the same hosts for real: a worker per vantage point, nmap in its own namespace.

The vantage lab (tests/vantage_lab.py) joins a hosts' namespace to two scanner
namespaces, ``dc1-app`` and ``office-lan``, each by its own link; nftables on
the hosts' side drops by scanner address. Each vantage point has a real
Celery worker (``run_worker --vantage``) whose nmap runs in that vantage
point's namespace, on the suite's PostgreSQL and Redis. So a port can be open
from one and filtered from the other, and each view changes only with its
own scans; a segmentation rule is violated when a firewall change lets the
wrong vantage point in (alerted once, counted in the exposure matrix) and
kept again when the firewall rule is restored.
"""

import pytest
import redis
from django.conf import settings
from django.db import transaction

from alerts.choices import ChannelKind
from alerts.models import AlertRule, Channel, Notification
from inventory.choices import RuleScope
from inventory.models import Service, Zone
from reach import matrix, segmentation
from reach.models import PortView, SegmentationRule, SegmentationViolation, VantagePoint
from reach.segmentation_choices import SegmentationMode
from scans.choices import ChangeKind as K
from scans.choices import ChunkStatus, RunStatus
from scans.models import Change, ScanProfile, ScanRun, ScanTarget, ScopeRule
from scans.services import start_run, start_runs
from tests.processes import WorkerProcess, wait_for
from tests.vantage_lab import HOSTS_NETWORK

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.netns, pytest.mark.postgresql("real workers")]

PORTS = "41000-41100"


def refreshed(run: ScanRun) -> ScanRun:
    run.refresh_from_db()
    return run


def finished(runs: list[ScanRun], workers) -> None:
    logs = "\n".join(worker.log()[-1500:] for worker in workers)
    wait_for(lambda: all(refreshed(run).is_terminal for run in runs), 120, message=f"the runs:\n{logs}")
    for run in runs:
        assert run.status == RunStatus.SUCCEEDED, run.error


def seen_from(vantage: str) -> dict:
    return {
        (view.host.address, view.port): view.state + (" stale" if view.stale else "")
        for view in PortView.objects.filter(vantage__name=vantage).select_related("host")
    }


def kinds(run: ScanRun) -> set:
    return set(Change.objects.filter(run=run).values_list("kind", "host__address", "port"))


@pytest.fixture
def lab(vantage_lab):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    ScopeRule.objects.create(network=HOSTS_NETWORK, action="allow", reason="vantage lab")
    return vantage_lab


@pytest.fixture
def target(lab):
    target = ScanTarget.objects.create(
        name="db hosts",
        zone=Zone.default(),
        targets="\n".join(lab.addresses[:2]),
        ports=PORTS,
        profile=ScanProfile.objects.get(slug="quick"),
    )
    target.vantage_points.set(
        [VantagePoint.objects.create(name="dc1-app"), VantagePoint.objects.create(name="office-lan")]
    )
    return target


def worker(tmp_path, lab, vantage: str) -> WorkerProcess:
    return WorkerProcess(
        tmp_path / f"{vantage}.log", f"--vantage={vantage}", "--concurrency=1", NMAP_PATH=str(lab.nmap_path(vantage))
    )


def test_each_vantage_point_sees_what_its_network_lets_through_and_only_its_own_scans_change_it(tmp_path, lab, target):
    db, other = lab.addresses[:2]
    lab.listen(db, 41022, 41080)
    lab.listen(other, 41080)
    lab.drop(41022, host=db, from_vantage="office-lan")
    lab.unreachable(other, from_vantage="office-lan")
    workers = [worker(tmp_path, lab, "dc1-app"), worker(tmp_path, lab, "office-lan")]
    try:
        first = start_runs(target)
        finished(first, workers)
        app_run, office_run = sorted(first, key=lambda run: run.vantage.name)
        # Whichever vantage point's scan was ingested first added the hosts to the inventory, once.
        discovered = Change.objects.filter(kind=K.HOST_DISCOVERED)
        assert sorted(discovered.values_list("host__address", flat=True)) == sorted([db, other])
        assert seen_from("dc1-app") == {(db, 41022): "open", (db, 41080): "open", (other, 41080): "open"}
        # Filtered from the office: never seen open from there, so not in its view at all.
        assert seen_from("office-lan") == {(db, 41080): "open"}
        exposures = {(kind, address, port) for kind, address, port in kinds(office_run) if kind != K.HOST_DISCOVERED}
        assert exposures == {(K.EXPOSURE_OPENED, db, 41080)}
        assert {(K.EXPOSURE_OPENED, db, 41022), (K.EXPOSURE_OPENED, other, 41080)} <= kinds(app_run)
        # Neither is the zone's home: the inventory's port states are untouched.
        assert not Service.objects.exists()

        # The segmentation rule: the database port only from dc1-app, alerted on a log channel.
        channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
        channel.rules.set(AlertRule.objects.filter(name="Segmentation violated"))
        with transaction.atomic():
            rule = SegmentationRule.objects.create(
                scope=RuleScope.GLOBAL, protocol="tcp", port_start=41022, port_end=41022,
                mode=SegmentationMode.ONLY, justification="the database from the app tier only",
            )  # fmt: skip
            rule.vantage_points.set([VantagePoint.objects.get(name="dc1-app")])
            segmentation.rule_changed(None, rule)
        assert not SegmentationViolation.objects.exists()

        # The firewall change that lets the office reach the database port: a violation, alerted once.
        lab.allow(41022, host=db, from_vantage="office-lan")
        office = VantagePoint.objects.get(name="office-lan")
        second = start_run(target, vantage=office)
        finished([second], workers)
        assert kinds(second) == {(K.EXPOSURE_OPENED, db, 41022), (K.SEGMENTATION_VIOLATED, db, 41022)}
        assert seen_from("office-lan")[(db, 41022)] == "open"
        assert seen_from("dc1-app")[(db, 41022)] == "open"
        assert list(SegmentationViolation.objects.values_list("vantage__name", "port")) == [("office-lan", 41022)]
        notification = Notification.objects.get(channel=channel)
        assert list(notification.changes.values_list("kind", "vantage__name")) == [
            (K.SEGMENTATION_VIOLATED, "office-lan")
        ]
        cells = matrix.kept().as_numbers()
        assert cells[("default", "office-lan")] == (2, 1) and cells[("default", "dc1-app")] == (3, 0)

        # Restored: filtered from the office again, and only the office's view says so.
        lab.drop(41022, host=db, from_vantage="office-lan")
        third = start_run(target, vantage=office)
        finished([third], workers)
        assert kinds(third) == {(K.EXPOSURE_CLOSED, db, 41022), (K.SEGMENTATION_KEPT, db, 41022)}
        assert seen_from("office-lan")[(db, 41022)] == "filtered"
        assert seen_from("dc1-app")[(db, 41022)] == "open"
        assert not SegmentationViolation.objects.exists()
        assert Notification.objects.filter(channel=channel).count() == 1
        assert matrix.kept().as_numbers()[("default", "office-lan")] == (1, 0)
    finally:
        for process in workers:
            process.stop()


def test_a_vantage_point_whose_worker_is_stopped_goes_stale_without_any_change(tmp_path, lab, target):
    db = lab.addresses[0]
    lab.listen(db, 41022)
    office = VantagePoint.objects.get(name="office-lan")
    office_worker = worker(tmp_path, lab, "office-lan")
    try:
        first = start_run(target, vantage=office)
        finished([first], [office_worker])
        assert seen_from("office-lan") == {(db, 41022): "open"}
    finally:
        office_worker.stop()

    # Nobody consumes the office's queue now: its run waits, and its view stays as last seen.
    lab.drop(41022, host=db, from_vantage="office-lan")
    waiting = start_run(target, vantage=office)
    app_worker = worker(tmp_path, lab, "dc1-app")  # another vantage point's worker never takes it
    try:
        app_run = start_run(target, vantage=VantagePoint.objects.get(name="dc1-app"))
        finished([app_run], [app_worker])
    finally:
        app_worker.stop()
    assert refreshed(waiting).status == RunStatus.QUEUED
    assert set(waiting.chunks.values_list("status", flat=True)) == {ChunkStatus.QUEUED}
    assert not Change.objects.filter(vantage=office).exclude(run=first).exists()
    assert seen_from("office-lan") == {(db, 41022): "open"}
