"""Start a Celery worker for PortWatch, consuming the right queues.

With --alerts, a delivery worker: only the ``alerts`` queue, so that slow
receivers and long scans never wait for each other.

Without --zone, a central worker: the default queue (scheduler ticks, and
later alerts) and the scan queue of every zone scanned centrally, followed as
zones change. With --zone (repeatable), a zone worker: only the scan queues of
those zones. Start it on a machine inside that network segment, pointed at the
central PostgreSQL and Redis (DATABASE_URL, REDIS_URL).

With --vantage (repeatable), a vantage point's worker: only the queue of those
vantage points (a zone's home vantage point's queue is the zone's). Start it
where that location's scans must come from (an office network, a DMZ, a
cluster's pod network): what it sees is that vantage point's view.
"""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inventory.models import Zone
from portwatch.celery import app, run_command
from reach.models import VantagePoint
from scans.queueing import queue_for_zone
from scans.worker import FollowZones, central_scan_queues


class Command(BaseCommand):
    help = "Start a Celery worker for the default queue and all zones, or only for the zones or vantage points given."

    def add_arguments(self, parser):
        parser.add_argument("--zone", action="append", default=[], help="Scan only this zone (repeatable).")
        parser.add_argument(
            "--vantage", action="append", default=[], help="Scan only from this vantage point (repeatable)."
        )
        parser.add_argument("--alerts", action="store_true", help="Deliver notifications only (the alerts queue).")
        parser.add_argument("--concurrency", type=int, default=2, help="Scans run at once by this worker.")
        parser.add_argument("--loglevel", default=settings.LOG_LEVEL, help="Default: LOG_LEVEL.")
        parser.add_argument("--name", default=None, help="Node name before the @ (default: central or zone-<zones>).")

    def handle(self, *args, zone, vantage, alerts, concurrency, loglevel, name, **options):
        if sum(map(bool, (alerts, zone, vantage))) > 1:
            raise CommandError("--alerts, --zone and --vantage start different workers: give one of them.")
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
        elif vantage:
            points = list(VantagePoint.objects.filter(name__in=vantage).select_related("home_of"))
            missing = sorted(set(vantage) - {point.name for point in points})
            if missing:
                raise CommandError(f"No such vantage point: {', '.join(missing)}. Create it first.")
            queues = [point.queue for point in points]
            name = name or f"vantage-{'-'.join(sorted(vantage))}"
        else:
            queues = ["default", *sorted(central_scan_queues())]
            name = name or "central"
            # Zones added later (or handed over to zone workers) are followed.
            app.steps["consumer"].add(FollowZones)
        self.stdout.write(f"Consuming queues: {', '.join(queues)}")
        if os.geteuid() == 0:
            self.stdout.write("Running as root (nmap's SYN scans need raw sockets; messages are JSON only).")
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
            ],
            loglevel=loglevel,
        )
