"""Schedule arithmetic (pure)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scans.schedules import Schedule, ScheduleError, parse_cron, parse_timezone

NOW = datetime(2026, 11, 23, 10, 7, 30, tzinfo=UTC)


def test_an_interval_schedule_starts_at_once_and_keeps_its_phase():
    every_15 = Schedule("interval", interval=15)
    first = every_15.first_slot(NOW)
    assert first == NOW
    # A tick 40 minutes late does not replay missed slots or shift the phase.
    assert every_15.slot_after(first, NOW + timedelta(minutes=40)) == NOW + timedelta(minutes=45)
    assert every_15.slot_after(first, NOW) == NOW + timedelta(minutes=15)


def test_a_cron_schedule_is_read_in_its_time_zone():
    nightly = Schedule("cron", cron="0 2 * * *", timezone="Asia/Tokyo")
    slot = nightly.first_slot(NOW)
    assert slot.astimezone(ZoneInfo("Asia/Tokyo")).replace(tzinfo=None) == datetime(2026, 11, 24, 2, 0)
    assert nightly.slot_after(slot, slot) == slot + timedelta(days=1)


def test_a_cron_slot_in_a_daylight_saving_gap_moves_forward():
    paris = Schedule("cron", cron="30 2 * * *", timezone="Europe/Paris")
    before_gap = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 in Paris, spring forward that night
    slot = paris.first_slot(before_gap).astimezone(ZoneInfo("Europe/Paris"))
    assert (slot.day, slot.hour, slot.minute) == (29, 3, 0)


def test_manual_schedules_have_no_slot():
    assert Schedule("manual").first_slot(NOW) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "Enter a cron expression"), ("* * *", "has 3"), ("60 * * * *", "not a valid"), ("* * * * * *", "has 6")],
)
def test_bad_cron_expressions_are_refused(text, message):
    with pytest.raises(ScheduleError, match=message):
        parse_cron(text)


def test_cron_expressions_are_normalised():
    assert parse_cron("  */5   *  * * 1-5 ") == "*/5 * * * 1-5"
    assert parse_cron("@Daily") == "@daily"


def test_time_zones_are_checked():
    assert parse_timezone("Europe/Paris") == ZoneInfo("Europe/Paris")
    with pytest.raises(ScheduleError):
        parse_timezone("Mars/Olympus_Mons")
