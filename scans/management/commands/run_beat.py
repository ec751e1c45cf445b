"""Start Celery beat for PortWatch: the scheduler's tick, alert dispatch and the overview's snapshots.

The same as ``celery -A portwatch beat``, except that the app and the broker
always come from PortWatch's settings, whatever variables such as APP or
BROKER_URL the environment holds (``portwatch.celery.run_command``). Two
beats at once are safe: each schedule slot starts one run.
"""

from django.conf import settings
from django.core.management.base import BaseCommand

from portwatch.celery import run_command


class Command(BaseCommand):
    help = "Start Celery beat: scheduled scans, alert dispatch and the overview chart's snapshots."

    def add_arguments(self, parser):
        parser.add_argument("--loglevel", default=settings.LOG_LEVEL, help="Default: LOG_LEVEL.")
        parser.add_argument(
            "--schedule",
            default=settings.CELERY_BEAT_SCHEDULE_FILENAME,
            help="Where beat keeps its own state (default: under PORTWATCH_VAR_DIR).",
        )

    def handle(self, *args, loglevel, schedule, **options):
        run_command(["beat", f"--loglevel={loglevel}", f"--schedule={schedule}"], loglevel=loglevel)
