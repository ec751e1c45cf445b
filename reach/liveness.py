"""Is anyone scanning from a vantage point? Its workers' heartbeats say.

A vantage point is *listening* when at least one live worker consumes its
queue: alive as the health check means it (``portwatch.health.alive_since``:
a heartbeat within HEARTBEAT_MISSES beats). Otherwise it is *silent*: its
scans wait in its queue, and its view is what it saw last. Stale, never
closed: a scan that did not run concludes nothing.

Silent since when: the latest heartbeat of any worker that consumed its
queue. A worker that died leaves its last heartbeat behind; one that stopped
cleanly removes it (``portwatch.heartbeat``), so "no worker has ever consumed
it" means none that PortWatch still remembers.

Pages and the API read every heartbeat once per request (``Board.read``, one
small table: a row per worker) and ask it about each vantage point.
"""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from portwatch.health import alive_since
from reach.choices import VantageStatus
from reach.models import VantagePoint
from scans.models import WorkerHeartbeat

NEVER = "no worker has ever consumed it"


@dataclass(frozen=True)
class Liveness:
    queue: str
    # The live workers consuming the queue, by name.
    workers: tuple[WorkerHeartbeat, ...]
    # The latest heartbeat of any worker that consumed it, live or dead (None: none remembered).
    last_heard: datetime | None

    @property
    def listening(self) -> bool:
        return bool(self.workers)

    @property
    def status(self) -> str:
        return VantageStatus.LISTENING if self.listening else VantageStatus.SILENT

    @property
    def silent_since(self) -> datetime | None:
        return None if self.listening else self.last_heard

    @property
    def worker_names(self) -> list[str]:
        return [worker.name for worker in self.workers]

    def describe(self) -> str:
        """ "listening", "silent since 2026-12-06 04:10 UTC" or "silent: no worker has ever consumed it"."""
        if self.listening:
            return VantageStatus.LISTENING.label
        if self.last_heard is None:
            return f"{VantageStatus.SILENT.label}: {NEVER}"
        return f"{VantageStatus.SILENT.label} since {timezone.localtime(self.last_heard):%Y-%m-%d %H:%M %Z}"


class Board:
    """Every worker's last heartbeat, read once, to tell each vantage point's liveness."""

    def __init__(self, heartbeats: list[WorkerHeartbeat], alive_after: datetime):
        self.heartbeats = heartbeats
        self.alive_after = alive_after

    @classmethod
    def read(cls) -> "Board":
        return cls(list(WorkerHeartbeat.objects.order_by("name")), alive_since())

    def of_queue(self, queue: str) -> Liveness:
        consuming = [beat for beat in self.heartbeats if isinstance(beat.queues, list) and queue in beat.queues]
        live = tuple(beat for beat in consuming if beat.seen_at >= self.alive_after)
        return Liveness(queue, live, max((beat.seen_at for beat in consuming), default=None))

    def of(self, vantage: VantagePoint) -> Liveness:
        return self.of_queue(vantage.queue)


def liveness(vantage: VantagePoint) -> Liveness:
    """One vantage point's liveness (a page of several reads a ``Board`` once)."""
    return Board.read().of(vantage)
