"""The Celery application. Configuration lives in settings (CELERY_*)."""

import os
import warnings

from celery import Celery
from celery.exceptions import CPendingDeprecationWarning
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


@celeryd_after_setup.connect
def _quiet_cancel_warning(**kwargs):
    """Celery warns at every broker reconnection that cancelling running tasks
    will become its default; PortWatch chooses not to cancel them (see
    settings). Added after Celery's own logging set-up, which turns every
    pending-deprecation warning on."""
    warnings.filterwarnings(
        "ignore", r"\s*In Celery 5\.1 we introduced an optional breaking change", CPendingDeprecationWarning
    )
