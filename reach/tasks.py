"""Beat's periodic reach work: segmentation rules saved, removed or expired."""

from celery import shared_task

from reach import segmentation_writes


@shared_task(ignore_result=True)
def settle_segmentation_rules() -> None:
    """Judge the rules saved since (a save's nudge, or what a lost one left), then apply expiries and removals.

    Judgements are taken with SKIP LOCKED and expiries claimed by a
    conditional UPDATE: overlapping runs do each once.
    """
    segmentation_writes.settle()
