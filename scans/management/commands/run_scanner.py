"""Start a remote scanner: a worker for one remote vantage point, holding no database credentials.

It consumes its vantage point's queue (``scan-from.<name>``), carries out the
signed orders it finds there (``scans.scanner``) and sends back signed
results and heartbeats through the broker, for the central workers to
ingest and record (``scans.remote``). Environment (README, "Reachable from where"):

    PORTWATCH_SCANNER_ONLY=1             no database: any query raises
    PORTWATCH_SCANNER_VANTAGE=office-lan its vantage point
    PORTWATCH_SCANNER_KEY=...            that vantage point's key (manage.py scanner_key on the centre)
    REDIS_URL=rediss://...               the central broker, over TLS
    PORTWATCH_SCANNER_ALLOWED_NETWORKS   optional: networks it accepts orders for, whatever they say
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portwatch.celery import run_command
from reach.models import VANTAGE_QUEUE_PREFIX


class Command(BaseCommand):
    help = "Start a remote scanner for one vantage point: no database, signed orders and results over the broker."
    # System checks need nothing of the database, but this command must not even try.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--concurrency", type=int, default=2, help="Scans run at once by this scanner.")
        parser.add_argument("--loglevel", default=settings.LOG_LEVEL, help="Default: LOG_LEVEL.")
        parser.add_argument("--name", default=None, help="Node name before the @ (default: scanner-<vantage>).")

    def handle(self, *args, concurrency, loglevel, name, **options):
        if not settings.SCANNER_ONLY:
            raise CommandError(
                "run_scanner holds no database credentials: start it with PORTWATCH_SCANNER_ONLY=1, "
                "PORTWATCH_SCANNER_VANTAGE, PORTWATCH_SCANNER_KEY and REDIS_URL set and DATABASE_URL unset "
                "(README, 'Reachable from where')."
            )
        vantage = settings.SCANNER_VANTAGE
        queue = f"{VANTAGE_QUEUE_PREFIX}{vantage}"
        self.stdout.write(f"Remote scanner of vantage point {vantage}: consuming queue {queue}, no database.")
        run_command(
            [
                "worker",
                f"--loglevel={loglevel}",
                f"--concurrency={concurrency}",
                f"--queues={queue}",
                f"--hostname={name or f'scanner-{vantage}'}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            loglevel=loglevel,
        )
