"""What judges the kept findings again (``listeners.findings``), besides a report.

A scan's changes: the ports of the hosts they touch that have a report, in
the ingest's transaction (``scans.signals``), one statement, none when no
host of the changes has a report. A port rule saved or deleted: where ports
may listen (``PortRule.listen_on``).
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from inventory.models import PortRule
from listeners import findings
from listeners.models import HostReport, PortFinding
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


@receiver([post_save, post_delete], sender=PortRule, dispatch_uid="listeners.binds")
def judge_binds_again(sender, instance, **kwargs) -> None:
    """A rule that says where its ports may listen, or said so (findings it marks), made, changed or removed:
    every finding on the ports of such rules is judged again. Other rules (a review's, say) change nothing
    here: the requirement is the most specific rule's among those that state one."""
    if instance.listen_on or (instance.pk and PortFinding.objects.filter(bind_rule_id=instance.pk).exists()):
        findings.judge_binds()
