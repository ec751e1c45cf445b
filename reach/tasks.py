"""Beat's periodic reach work: segmentation rules that expired."""

from celery import shared_task

from reach import segmentation


@shared_task(ignore_result=True)
def expire_segmentation_rules() -> None:
    # Each rule is claimed by a conditional UPDATE: overlapping runs apply an expiry once.
    segmentation.expire()
