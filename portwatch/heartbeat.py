"""Workers report themselves for the health check.

Celery's own ping is a broadcast, which the embedded filesystem broker cannot
carry; a database row refreshed every WORKER_HEARTBEAT_SECONDS works on every
broker. The row goes on a clean stop, so the health check can tell "no worker"
from "a worker that died" (a row that stopped moving). A remote scanner, which
has no database, sends a signed heartbeat that a central worker records.

This module is imported with the Celery app, before Django is set up, so
the model is looked up when a worker starts.
"""

import logging
import os

from celery import bootsteps
from django.apps import apps
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger(__name__)


class WorkerHeartbeatStep(bootsteps.StartStopStep):
    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.timer_ref = None

    @staticmethod
    def model():
        return apps.get_model("scans", "WorkerHeartbeat")

    def start(self, consumer):
        self.started_at = timezone.now()
        self.beat(consumer)
        self.timer_ref = consumer.timer.call_repeatedly(settings.WORKER_HEARTBEAT_SECONDS, self.beat, (consumer,))

    def stop(self, consumer):
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
        if settings.SCANNER_ONLY:
            self._send(consumer, stopping=True)
            return
        self._write(lambda: self.model().objects.filter(name=consumer.hostname).delete())

    def beat(self, consumer):
        if settings.SCANNER_ONLY:
            self._send(consumer)
            return
        queues = sorted(queue.name for queue in consumer.task_consumer.queues)
        fields = {"queues": queues, "pid": os.getpid(), "seen_at": timezone.now()}
        self._write(
            lambda: self.model().objects.update_or_create(
                name=consumer.hostname, defaults=fields, create_defaults={**fields, "started_at": self.started_at}
            )
        )

    @staticmethod
    def _send(consumer, *, stopping: bool = False):
        """A remote scanner has no database: its heartbeat is a signed message to the centre (scans.remote)."""
        from scans import scanner  # noqa: PLC0415 - imported with the Celery app, before Django is set up

        try:
            consumer.app.send_task(
                "scans.tasks.scanner_alive",
                args=list(scanner.heartbeat(consumer.hostname, stopping=stopping)),
                queue=settings.CELERY_TASK_DEFAULT_QUEUE,
            )
        except Exception:
            logger.exception("could not send this scanner's heartbeat")

    @staticmethod
    def _write(operation):
        # As scans.worker.FollowZones: hold no connection the pool's children could inherit.
        try:
            close_old_connections()
            operation()
        except Exception:
            logger.exception("could not record this worker's heartbeat")
        finally:
            connection.close()
