"""Every zone gets its home vantage point when it is created."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from inventory.models import Zone
from reach.models import ensure_home


@receiver(post_save, sender=Zone, dispatch_uid="reach.zone_home")
def zone_home(sender, instance: Zone, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        ensure_home(instance)
