"""Beat's periodic listener work: judging again the hosts scanned since the last sweep."""

from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from inventory.models import Host
from listeners import findings
from listeners.models import FindingsSweep

# A scan's ingest stamps its hosts inside its transaction and commits later:
# each sweep looks this far behind the last one, so a slow commit is not missed.
OVERLAP = timedelta(minutes=30)


@shared_task(ignore_result=True)
def judge_scanned_hosts() -> int:
    """Hosts with a report that a scan covered since the last sweep (a port newly probed changes no port,
    yet a listener there is now shielded, not unscanned). The first sweep judges every host."""
    now = timezone.now()
    with transaction.atomic():
        sweep = FindingsSweep.objects.select_for_update().order_by("pk").first()
        if sweep is None:
            judged = findings.refresh()
            FindingsSweep.objects.create(until=now)
            return judged
        since = sweep.until - OVERLAP
        scanned = (
            Host.objects.filter(listener_reports__applied=True)
            .filter(Q(last_scanned__gte=since) | Q(views__last_scanned__gte=since))
            .values_list("pk", flat=True)
            .distinct()
        )
        judged = findings.refresh(list(scanned))
        sweep.until = now
        sweep.save(update_fields=["until"])
    return judged
