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
