"""Which maintenance windows cover one host now (the host page says so, and offers to mute it)."""

import ipaddress

from django.utils import timezone

from alerts.choices import MuteScope
from alerts.models import Mute


def covering(host, now=None) -> list[Mute]:
    """The active mutes whose scope holds ``host``, ending soonest first (a handful at most: checked here)."""
    now = now or timezone.now()
    active = Mute.objects.filter(starts_at__lte=now, ends_at__gt=now).select_related("zone", "tag", "host")
    tag_ids = None
    found = []
    for mute in active.order_by("ends_at"):
        if mute.scope == MuteScope.TAG and tag_ids is None:
            tag_ids = set(host.tags.values_list("pk", flat=True))
        if _holds(mute, host, tag_ids):
            found.append(mute)
    return found


def _holds(mute: Mute, host, tag_ids) -> bool:
    if mute.scope == MuteScope.GLOBAL:
        return True
    if mute.scope == MuteScope.ZONE:
        return mute.zone_id == host.zone_id
    if mute.scope == MuteScope.TAG:
        return mute.tag_id in tag_ids
    if mute.scope == MuteScope.CIDR:
        try:
            return ipaddress.ip_address(host.address) in ipaddress.ip_network(mute.cidr, strict=False)
        except ValueError:
            return False
    return mute.host_id == host.pk
