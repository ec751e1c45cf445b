"""A vantage point listens while a live worker consumes its queue; otherwise it is silent, and says since when.

Real heartbeat rows (``scans.WorkerHeartbeat``), fresh and old: alive means
what the health check means (a heartbeat within HEARTBEAT_MISSES beats).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory.models import Zone
from portwatch.health import HEARTBEAT_MISSES
from reach.choices import VantageStatus
from reach.liveness import Board, liveness
from reach.models import VantagePoint
from scans.models import WorkerHeartbeat

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture(autouse=True)
def _beats_every_ten_seconds(settings):
    settings.WORKER_HEARTBEAT_SECONDS = 10


@pytest.fixture
def office():
    return VantagePoint.objects.create(name="office-lan")


def beat(name, queues, seconds_ago):
    return WorkerHeartbeat.objects.create(
        name=name, queues=queues, seen_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


def test_no_worker_ever_seen_is_silent_and_says_so(office):
    beat("central@a", ["default", "scan.default"], 1)
    state = liveness(office)
    assert (state.status, state.listening, state.workers, state.silent_since) == (VantageStatus.SILENT, False, (), None)
    assert state.describe() == "silent: no worker has ever consumed it"


def test_a_fresh_heartbeat_on_its_queue_makes_it_listen(office):
    beat("vantage-office-lan@scanner1", ["scan-from.office-lan"], 2)
    beat("vantage-office-lan@scanner2", ["scan-from.office-lan", "scan-from.dmz"], 5)
    beat("vantage-dmz@x", ["scan-from.dmz"], 1)
    state = liveness(office)
    assert state.status == VantageStatus.LISTENING and state.describe() == "listening"
    assert state.worker_names == ["vantage-office-lan@scanner1", "vantage-office-lan@scanner2"]
    assert state.silent_since is None


def test_an_old_heartbeat_is_a_dead_worker_and_the_vantage_point_is_silent_since_then(office):
    dead = beat("vantage-office-lan@scanner1", ["scan-from.office-lan"], 10 * HEARTBEAT_MISSES + 5)
    state = liveness(office)
    assert state.status == VantageStatus.SILENT and state.workers == ()
    assert state.silent_since == dead.seen_at
    assert state.describe() == f"silent since {timezone.localtime(dead.seen_at):%Y-%m-%d %H:%M %Z}"


def test_silent_since_is_the_latest_heartbeat_of_any_worker_that_consumed_it(office):
    beat("old@a", ["scan-from.office-lan"], 3600)
    later = beat("old@b", ["scan-from.office-lan"], 600)
    assert liveness(office).silent_since == later.seen_at


def test_one_live_worker_among_dead_ones_is_enough(office):
    beat("old@a", ["scan-from.office-lan"], 3600)
    beat("new@b", ["scan-from.office-lan"], 0)
    state = liveness(office)
    assert state.listening and state.worker_names == ["new@b"]


def test_a_zones_home_listens_to_the_zones_queue_which_central_workers_consume():
    home = Zone.objects.create(name="dc1").home_vantage
    beat("central@a", ["default", "scan.dc1", "scan.default"], 1)
    assert liveness(home).worker_names == ["central@a"]
    # A worker for a vantage point named like the zone would consume another queue.
    beat("vantage-dc1@b", ["scan-from.dc1"], 1)
    assert liveness(home).worker_names == ["central@a"]


def test_a_board_reads_the_heartbeats_once_for_many_vantage_points(office, django_assert_num_queries):
    dmz = VantagePoint.objects.create(name="dmz")
    beat("vantage-dmz@x", ["scan-from.dmz"], 1)
    with django_assert_num_queries(1):
        board = Board.read()
        states = {point.name: board.of(point).status for point in (office, dmz)}
    assert states == {"office-lan": VantageStatus.SILENT, "dmz": VantageStatus.LISTENING}
