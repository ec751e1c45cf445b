"""A scan's changes judge again the ports of the hosts they touch that have a report.

Runs inside the ingest's transaction (``scans.signals``): one statement for
the hosts concerned, none when no host of the changes has a report.
"""

from django.dispatch import receiver

from listeners import findings
from listeners.models import HostReport
from scans.choices import LISTENER_KINDS, SEGMENTATION_KINDS
from scans.signals import changes_recorded


@receiver(changes_recorded, dispatch_uid="listeners.findings")
def judge_changed_hosts(sender, changes, **kwargs) -> None:
    hosts = (
        changes.exclude(kind__in=[*LISTENER_KINDS, *SEGMENTATION_KINDS])  # a report judges its own host
        .filter(host_id__in=HostReport.objects.filter(applied=True).values("host_id"))
        .values_list("host_id", flat=True)
        .distinct()
    )
    findings.refresh(list(hosts))
