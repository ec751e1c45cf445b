"""Beat's periodic certificate work (certs.expiry)."""

from celery import shared_task

from certs import expiry


@shared_task(ignore_result=True)
def record_expiry() -> int:
    return expiry.record_expiry()
