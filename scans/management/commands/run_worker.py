"""Start a Celery worker for PortWatch, consuming the right queues.

With --alerts, a delivery worker: only the ``alerts`` queue, so that slow
receivers and long scans never wait for each other.

Without --zone, a central worker: the default queue (scheduler ticks, and
later alerts) and the scan queue of every zone scanned centrally, followed as
zones change. With --zone (repeatable), a zone worker: only the scan queues of
those zones. Start it on a machine inside that network segment, pointed at the
central PostgreSQL and Redis (DATABASE_URL, REDIS_URL).
"""

from django.core.management.base import BaseCommand, CommandError

from inventory.models import Zone
from portwatch.celery import app, run_command
from scans.queueing import queue_for_zone
from scans.worker import FollowZones, central_scan_queues


class Command(BaseCommand):
    help = "Start a Celery worker for the default queue and all zones, or only for the zones given."

    def add_arguments(self, parser):
        parser.add_argument("--zone", action="append", default=[], help="Scan only this zone (repeatable).")
        parser.add_argument("--alerts", action="store_true", help="Deliver notifications only (the alerts queue).")
        parser.add_argument("--concurrency", type=int, default=2, help="Scans run at once by this worker.")
        parser.add_argument("--loglevel", default="INFO")
        parser.add_argument("--name", default=None, help="Node name before the @ (default: central or zone-<zones>).")

    def handle(self, *args, zone, alerts, concurrency, loglevel, name, **options):
        if alerts and zone:
            raise CommandError("--alerts and --zone start different workers: give one of them.")
        if alerts:
            queues = ["alerts"]
            name = name or "alerts"
        elif zone:
            zones = list(Zone.objects.filter(name__in=zone))
            missing = sorted(set(zone) - {z.name for z in zones})
            if missing:
                raise CommandError(f"No such zone: {', '.join(missing)}. Create it first.")
            queues = [queue_for_zone(z) for z in zones]
            name = name or f"zone-{'-'.join(sorted(zone))}"
        else:
            queues = ["default", *sorted(central_scan_queues())]
            name = name or "central"
            # Zones added later (or handed over to zone workers) are followed.
            app.steps["consumer"].add(FollowZones)
        self.stdout.write(f"Consuming queues: {', '.join(queues)}")
        run_command(
            [
                "worker",
                f"--loglevel={loglevel}",
                f"--concurrency={concurrency}",
                f"--queues={','.join(queues)}",
                f"--hostname={name}@%h",
                # Gossip and mingle keep workers informed of each other through
                # the broker; PortWatch's state is in the database and nothing
                # reads them. Gossip also fails on every broker reconnection in
                # Celery 5.7 ("Error on restarting Gossip"), see portwatch.broker.
                "--without-gossip",
                "--without-mingle",
            ]
        )
