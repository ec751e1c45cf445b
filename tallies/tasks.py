"""Beat's periodic work on the kept counts."""

from celery import shared_task

from tallies import maintenance


@shared_task(ignore_result=True)
def compact() -> None:
    maintenance.compact()
