"""What an operator (or a load balancer with a token) asks first: is it all running?

Each check returns its status and a sentence that says what is wrong and what
to do; the endpoint answers 200 when every check passes and 503 otherwise.
"""

import time
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from inventory.models import Zone
from portwatch.celery import app
from reach.models import VantagePoint
from scans.models import ScanTarget, WorkerHeartbeat
from scans.nmap_runner import NmapNotFound, nmap_version
from scans.queueing import queue_for_zone

OK, FAILING = "ok", "failing"
BROKER_TIMEOUT_SECONDS = 2
# A worker writes its row every WORKER_HEARTBEAT_SECONDS; three missed beats is dead.
HEARTBEAT_MISSES = 3


@dataclass
class Check:
    status: str
    detail: str
    seconds: float = 0.0


def _timed(function) -> Check:
    started = time.monotonic()
    try:
        check = function()
    except Exception as error:  # a check that raises is a failing check, with its reason
        check = Check(FAILING, f"{type(error).__name__}: {error}")
    check.seconds = round(time.monotonic() - started, 4)
    return check


def check_database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return Check(OK, f"{connection.vendor} answers")


def check_broker() -> Check:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
        transport = conn.transport_cls
    return Check(OK, f"{transport} broker reachable")


def required_queues() -> set[str]:
    """The default and alert queues, and the scan queue of each vantage point an enabled target is scanned from.

    A target with no vantage point chosen is scanned from its zone's home, whose queue is the zone's.
    """
    enabled = ScanTarget.objects.filter(enabled=True)
    zones = Zone.objects.filter(pk__in=enabled.filter(vantage_points__isnull=True).values("zone_id"))
    chosen = VantagePoint.objects.filter(pk__in=enabled.values("vantage_points")).select_related("home_of")
    return {"default", "alerts", *(queue_for_zone(zone) for zone in zones), *(point.queue for point in chosen)}


def alive_since():
    """A worker whose heartbeat is older than this is dead (reach.liveness reads it too)."""
    return timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_SECONDS * HEARTBEAT_MISSES)


def live_workers() -> list[WorkerHeartbeat]:
    return list(WorkerHeartbeat.objects.filter(seen_at__gte=alive_since()))


def check_workers() -> Check:
    workers = live_workers()
    consumed = {queue for worker in workers for queue in worker.queues}
    missing = sorted(required_queues() - consumed)
    names = ", ".join(worker.name for worker in workers) or "none"
    if missing:
        return Check(
            FAILING,
            f"no running worker consumes {', '.join(missing)} (workers: {names}). "
            "Start one with 'python3 manage.py run_worker' (scans), 'run_worker --alerts' (alerts) "
            "or 'run_worker --zone NAME' (a zone's scans).",
        )
    return Check(OK, f"{len(workers)} worker{'s' if len(workers) != 1 else ''}: {names}")


def check_nmap() -> Check:
    try:
        return Check(OK, f"nmap {nmap_version()}")
    except NmapNotFound as error:
        return Check(FAILING, str(error))


CHECKS = {"database": check_database, "broker": check_broker, "workers": check_workers, "nmap": check_nmap}


def run_checks() -> dict:
    results = {name: _timed(check) for name, check in CHECKS.items()}
    if results["database"].status != OK:
        # The worker list lives in the database: without it, say so instead of a second traceback.
        results["workers"] = Check(FAILING, "unknown: the database is not reachable")
    healthy = all(check.status == OK for check in results.values())
    return {"status": OK if healthy else FAILING, "checks": {name: asdict(check) for name, check in results.items()}}
