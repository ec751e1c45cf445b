"""Worker-side pieces: central workers follow the list of zones they scan."""

import logging

from celery import bootsteps
from django.db import close_old_connections, connection

from inventory.models import Zone
from scans.queueing import queue_for_zone

logger = logging.getLogger(__name__)

ZONE_SYNC_SECONDS = 30.0


def central_scan_queues() -> set[str]:
    return {queue_for_zone(zone) for zone in Zone.objects.filter(central=True)}


class FollowZones(bootsteps.StartStopStep):
    """Keep a central worker subscribed to the scan queue of every zone that
    central workers scan, as admins add zones or hand them to zone workers.

    Runs in the worker's main process on its timer; the database connection
    is closed after each look so the pool's children never inherit it.
    """

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.timer_ref = None

    def start(self, consumer):
        self.sync(consumer)
        self.timer_ref = consumer.timer.call_repeatedly(ZONE_SYNC_SECONDS, self.sync, (consumer,))

    def stop(self, consumer):
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def sync(self, consumer):
        try:
            close_old_connections()
            wanted = central_scan_queues()
        except Exception:
            logger.exception("could not read the zone list; keeping the current scan queues")
            return
        finally:
            connection.close()
        current = {queue.name for queue in consumer.task_consumer.queues if queue.name.startswith("scan.")}
        for name in sorted(wanted - current):
            logger.info("now scanning zone queue %s", name)
            consumer.add_task_queue(name)
        for name in sorted(current - wanted):
            logger.info("no longer scanning zone queue %s", name)
            consumer.cancel_task_queue(name)
