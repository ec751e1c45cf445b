"""The Celery application. Configuration lives in settings (CELERY_*)."""

import os

from celery import Celery

from portwatch.heartbeat import WorkerHeartbeatStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portwatch.settings")

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


def run_command(argv: list[str]) -> None:
    """Run a Celery command (``worker``, ``beat``) on this app, as the ``celery`` program would."""
    for name in CELERY_CLI_VARIABLES:
        os.environ.pop(name, None)
    app.start(argv=["--app=portwatch.celery:app", *argv])
