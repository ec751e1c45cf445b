"""Every zone gets its home vantage point when it is created; segmentation follows hosts' tags and zones."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from inventory.models import Zone
from inventory.signals import hosts_rescoped
from reach.models import ensure_home


@receiver(post_save, sender=Zone, dispatch_uid="reach.zone_home")
def zone_home(sender, instance: Zone, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        ensure_home(instance)


@receiver(hosts_rescoped, dispatch_uid="reach.segmentation_hosts_rescoped")
def segmentation_hosts_rescoped(sender, hosts, **kwargs) -> None:
    """Their tags or zone changed: segmentation rules of other scopes may govern them now."""
    from reach import segmentation  # noqa: PLC0415 - imports scans, which imports this app's models

    segmentation.hosts_rescoped(hosts)
