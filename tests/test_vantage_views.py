"""Vantage points: each one's view is diffed on its own, by the same rules as the inventory.

The inventory (hosts' status, services' states) is what the zone's home
vantage point sees; a scan from any other vantage point writes only that
vantage point's view (``reach.HostView``, ``reach.PortView``) and its
``exposure_*`` changes. Run on both databases, through the real entry point
(``scans.ingest.entry.ingest``): on PostgreSQL the home's scans go through the
set-based SQL engine, on SQLite through the ORM engine.
"""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from inventory.choices import HostStatus
from inventory.models import Host, Service, Zone
from inventory.ports import PortSet
from reach.models import HostView, PortView, VantagePoint
from scans import queueing, services
from scans.choices import ChangeKind as K
from scans.choices import ScheduleKind
from scans.models import ScanProfile, ScanTarget
from tests.factories import scan

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

A, B = "198.18.30.1", "198.18.30.2"


def view(vantage, address, port=None):
    if port is None:
        return HostView.objects.get(vantage=vantage, host__address=address).status
    row = PortView.objects.get(vantage=vantage, host__address=address, port=port)
    return row.state + (" stale" if row.stale else "")


def changes(run) -> set:
    return {(change.kind, change.host.address, change.port, change.vantage.name) for change in run.changes.all()}


@pytest.fixture
def office():
    return VantagePoint.objects.create(name="office-lan")


@pytest.fixture
def dmz():
    return VantagePoint.objects.create(name="dmz")


def test_every_zone_has_a_home_vantage_point_whose_queue_is_the_zones():
    zone = Zone.objects.create(name="dc1")
    home = zone.home_vantage
    assert (home.name, home.is_home, home.queue) == ("dc1", True, "scan.dc1")
    assert VantagePoint.objects.create(name="office-lan").queue == "scan-from.office-lan"
    # A vantage point already named like a new zone: the home takes another name.
    VantagePoint.objects.create(name="dc2")
    assert Zone.objects.create(name="dc2").home_vantage.name == "dc2-home"


def test_a_run_without_a_vantage_point_is_the_zones_home_and_its_changes_carry_it():
    run = scan(None, {A: {22: "open"}})
    home = Zone.default().home_vantage
    assert run.vantage == home and run.from_home
    assert changes(run) == {(K.HOST_DISCOVERED, A, None, home.name), (K.PORT_OPENED, A, 22, home.name)}


def test_a_scan_from_elsewhere_writes_its_view_and_never_the_inventory(office):
    scan(None, {A: {22: "open"}})
    run = scan(office, {A: {22: "open", 5432: "open"}})

    assert not run.from_home
    assert changes(run) == {(K.EXPOSURE_OPENED, A, 22, "office-lan"), (K.EXPOSURE_OPENED, A, 5432, "office-lan")}
    assert (view(office, A), view(office, A, 22), view(office, A, 5432)) == ("up", "open", "open")
    # The inventory is the home's view: 5432 was not seen from there.
    assert set(Service.objects.values_list("port", "state")) == {(22, "open")}


def test_the_homes_scan_never_changes_another_vantage_points_view(office):
    scan(office, {A: {5432: "open"}})
    scan(None, {A: {22: "open"}})
    assert view(office, A, 5432) == "open"
    assert not PortView.objects.filter(port=22).exists()
    assert set(Service.objects.values_list("port", "state")) == {(22, "open")}


def test_closed_or_filtered_from_a_vantage_point_is_an_exposure_closed_there_only(office):
    scan(None, {A: {22: "open", 80: "open"}})
    scan(office, {A: {22: "open", 80: "open"}})
    run = scan(office, {A: {80: "filtered"}})  # 22 not listed: closed (the rest of the probed ports)

    assert changes(run) == {(K.EXPOSURE_CLOSED, A, 22, "office-lan"), (K.EXPOSURE_CLOSED, A, 80, "office-lan")}
    assert (view(office, A, 22), view(office, A, 80)) == ("closed", "filtered")
    assert set(Service.objects.values_list("port", "state")) == {(22, "open"), (80, "open")}


def test_a_failed_scan_from_a_vantage_point_concludes_nothing(office):
    scan(office, {A: {22: "open"}})
    run = scan(office, {A: {}}, complete=False)
    assert changes(run) == set()
    assert view(office, A, 22) == "open"


def test_a_port_outside_the_probed_set_is_not_observed_from_there(office):
    scan(office, {A: {8080: "open"}}, probed={"tcp": PortSet.parse("1-65535")})
    run = scan(office, {A: {22: "open"}}, probed={"tcp": PortSet.parse("1-1024")})
    assert changes(run) == {(K.EXPOSURE_OPENED, A, 22, "office-lan")}
    assert view(office, A, 8080) == "open"


def test_a_host_silent_from_a_vantage_point_keeps_its_ports_stale_and_stays_up_in_the_inventory(office):
    scan(None, {A: {22: "open"}})
    scan(office, {A: {22: "open"}})
    run = scan(office, {}, silent=[A])

    assert changes(run) == {(K.HOST_UNREACHABLE, A, None, "office-lan")}
    assert (view(office, A), view(office, A, 22)) == ("unreachable", "open stale")
    assert Host.objects.get(address=A).status == HostStatus.UP
    assert Service.objects.get(port=22).stale is False

    back = scan(office, {A: {22: "open"}})
    assert changes(back) == {(K.HOST_RETURNED, A, None, "office-lan")}
    assert view(office, A, 22) == "open"


def test_one_vantage_points_scan_says_nothing_about_anothers_view(office, dmz):
    scan(office, {A: {22: "open"}})
    scan(dmz, {A: {22: "open"}})
    scan(office, {A: {}})
    assert (view(office, A, 22), view(dmz, A, 22)) == ("closed", "open")


def test_a_host_only_another_vantage_point_reaches_joins_the_inventory_without_port_states(office):
    run = scan(office, {B: {3306: "open"}})
    assert changes(run) == {(K.HOST_DISCOVERED, B, None, "office-lan"), (K.EXPOSURE_OPENED, B, 3306, "office-lan")}
    host = Host.objects.get(address=B)
    assert host.status == HostStatus.UP and not host.services.exists()
    # The home then scans it and finds it silent: the inventory says so; the office's view stands.
    scan(None, {}, silent=[B])
    assert Host.objects.get(address=B).status == HostStatus.UNREACHABLE
    assert view(office, B, 3306) == "open"


def test_a_known_host_new_to_a_vantage_point_is_not_discovered_again(office):
    scan(None, {A: {22: "open"}})
    run = scan(office, {A: {}})
    assert changes(run) == set()
    assert view(office, A) == "up"


def test_an_old_file_from_a_vantage_point_never_overrides_its_newer_view(office):
    now = timezone.now()
    scan(office, {A: {22: "open"}}, at=now)
    run = scan(office, {A: {}}, at=now - timedelta(hours=1))
    assert changes(run) == set()
    assert view(office, A, 22) == "open"


# --- runs, queues and workers -----------------------------------------------------------


@pytest.fixture
def target(office):
    profile = ScanProfile.objects.get(slug="full") or ScanProfile.objects.create(name="quick", nmap_arguments="-sT")
    target = ScanTarget.objects.create(
        name="db subnet",
        zone=Zone.default(),
        targets="127.77.30.0/30",
        profile=profile,
        schedule_kind=ScheduleKind.INTERVAL,
        schedule_interval=60,
        next_run_at=timezone.now() - timedelta(minutes=1),
    )
    return target


def test_a_target_is_scanned_from_its_zones_home_unless_vantage_points_are_chosen(target, office, monkeypatch):
    sent = []
    monkeypatch.setattr(queueing, "send_on_commit", lambda run, ids: sent.append(run.queue))
    runs = services.start_runs(target)
    assert [run.vantage.name for run in runs] == [Zone.default().home_vantage.name]

    target.vantage_points.set([office, Zone.default().home_vantage])
    runs = services.start_runs(target)
    # The home first; each run's chunks go to its own vantage point's queue.
    assert [run.vantage.name for run in runs] == [Zone.default().home_vantage.name, "office-lan"]
    assert sent[1:] == [f"scan.{Zone.default().name}", "scan-from.office-lan"]


def test_a_schedule_slot_starts_one_run_per_vantage_point_and_never_two(target, office, dmz, monkeypatch):
    monkeypatch.setattr(queueing, "send_on_commit", lambda run, ids: None)
    target.vantage_points.set([office, dmz])
    started = services.enqueue_due_runs()
    assert sorted(run.vantage.name for run in started) == ["dmz", "office-lan"]
    assert len({run.schedule_slot for run in started}) == 1
    assert services.enqueue_due_runs() == []  # the slot was claimed


def test_a_vantage_point_worker_refuses_an_unknown_name():
    with pytest.raises(CommandError, match="No such vantage point: nowhere"):
        call_command("run_worker", vantage=["nowhere"])
    with pytest.raises(CommandError, match="give one of them"):
        call_command("run_worker", vantage=["x"], zone=["y"])
