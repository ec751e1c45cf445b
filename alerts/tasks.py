"""Celery tasks of the delivery queue (``alerts``): thin wrappers over ``alerts.delivery``.

Delivery runs on its own queue and worker (``run_worker --alerts``), so a
slow or failing receiver never holds up a scan, and a long scan never holds
up an alert.
"""

from celery import shared_task

from alerts import delivery, watch


@shared_task(acks_late=True, reject_on_worker_lost=True)
def deliver(notification_id: int) -> None:
    # Claimed by a conditional UPDATE: a duplicate delivery of this task is a no-op.
    delivery.deliver(notification_id)


@shared_task(acks_late=True)
def dispatch() -> None:
    delivery.dispatch_due()


@shared_task(acks_late=True)
def watch_vantage_points() -> None:
    # On the delivery queue: its worker is not the one a scan queue's silence is about.
    watch.watch()
