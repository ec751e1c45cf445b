"""The Celery application. Configuration lives in settings (CELERY_*)."""

import os
import warnings

from celery import Celery
from celery.exceptions import CPendingDeprecationWarning, SecurityWarning
from celery.signals import celeryd_after_setup

from portwatch import broker
from portwatch.heartbeat import WorkerHeartbeatStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portwatch.settings")
broker.install()

app = Celery("portwatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker reports itself for the health check.
app.steps["consumer"].add(WorkerHeartbeatStep)

# The `celery` command line reads these variables as its global options (APP is
# -A, BROKER_URL is -b and wins over the settings, ...). A deployment's
# environment may hold any of them for something else; PortWatch's workers and
# beat take their app and broker from PortWatch's settings only.
CELERY_CLI_VARIABLES = ("APP", "BROKER_URL", "RESULT_BACKEND", "LOADER", "CONFIG_MODULE")


def run_command(argv: list[str], *, loglevel: str = "INFO") -> None:
    """Run a Celery command (``worker``, ``beat``) on this app, as the ``celery`` program would.

    Below DEBUG, without the banners (the configuration and the task list,
    printed at every start): the console says what happens, not what is set.
    """
    for name in CELERY_CLI_VARIABLES:
        os.environ.pop(name, None)
    quiet = [] if loglevel.upper() == "DEBUG" else ["--quiet"]
    # Celery warns, in eight lines at every start, that a worker runs as root.
    # Its danger is pickle (a message that runs code as root): PortWatch's
    # workers accept JSON only (CELERY_ACCEPT_CONTENT), and nmap -sS needs
    # raw sockets in any case. Said once, in one line, by run_worker.
    warnings.filterwarnings("ignore", category=SecurityWarning)
    app.start(argv=["--app=portwatch.celery:app", *quiet, *argv])


@celeryd_after_setup.connect
def _quiet_cancel_warning(**kwargs):
    """Celery warns at every broker reconnection that cancelling running tasks
    will become its default; PortWatch chooses not to cancel them (see
    settings). Added after Celery's own logging set-up, which turns every
    pending-deprecation warning on."""
    warnings.filterwarnings(
        "ignore", r"\s*In Celery 5\.1 we introduced an optional breaking change", CPendingDeprecationWarning
    )
