"""Schedule arithmetic: when a target's next run is due. Pure functions.

Interval schedules keep their phase (slot + k x interval), so a late tick
does not make every later run late too. Cron schedules are read in the
target's time zone (croniter; daylight-saving gaps move to the next valid
minute). Slots missed while nothing was ticking are not replayed: the next
slot is always after "now".
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

from scans.choices import ScheduleKind

MACROS = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}


class ScheduleError(ValueError):
    """A schedule that cannot be read."""


def parse_cron(expression: str) -> str:
    """A normalised five-field cron expression (or macro), or ScheduleError."""
    text = " ".join(expression.split())
    if not text:
        raise ScheduleError("Enter a cron expression, for example */15 * * * * (every 15 minutes).")
    if text.lower() in MACROS:
        return text.lower()
    fields = text.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            f"A cron expression has five fields (minute hour day month weekday); {text!r} has {len(fields)}."
        )
    if not croniter.is_valid(text):
        raise ScheduleError(f"{text!r} is not a valid cron expression.")
    return text


@cache
def timezone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def parse_timezone(name: str) -> ZoneInfo:
    if name not in timezone_names():
        raise ScheduleError(f"{name!r} is not a time zone name such as UTC or Europe/Paris.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"{name!r} is not a time zone name such as UTC or Europe/Paris.") from None


@dataclass(frozen=True)
class Schedule:
    kind: str
    interval: int | None = None  # minutes
    cron: str = ""
    timezone: str = "UTC"

    def first_slot(self, now: datetime) -> datetime | None:
        """The first slot of a new or changed schedule: interval schedules start at once."""
        if self.kind == ScheduleKind.INTERVAL:
            return now
        if self.kind == ScheduleKind.CRON:
            return _next_cron(self.cron, self.timezone, now)
        return None

    def slot_after(self, slot: datetime, now: datetime) -> datetime:
        """The slot that follows ``slot``: the first one later than ``now``."""
        if self.kind == ScheduleKind.INTERVAL:
            step = timedelta(minutes=self.interval)
            return slot + step * (int((now - slot) / step) + 1)
        return _next_cron(self.cron, self.timezone, max(now, slot))


def _next_cron(cron: str, timezone: str, after: datetime) -> datetime:
    local = after.astimezone(parse_timezone(timezone))
    return croniter(cron, local).get_next(datetime)
