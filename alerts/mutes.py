"""Which maintenance windows cover one host now (the host page says so, and offers to mute it).

The same scope conditions as the changes a mute holds back (alerts.outbox.mute_condition),
asked of the host itself: one definition of what a mute covers.
"""

from django.utils import timezone

from alerts import outbox
from alerts.models import Mute
from inventory.models import Host


def covering(host, now=None) -> list[Mute]:
    """The active mutes whose scope holds ``host``, ending soonest first (a query for the active
    ones, then one per active mute: a handful at most)."""
    now = now or timezone.now()
    active = Mute.objects.filter(starts_at__lte=now, ends_at__gt=now).select_related("zone", "tag", "host")
    this_host = Host.objects.filter(pk=host.pk)
    return [
        mute for mute in active.order_by("ends_at") if this_host.filter(outbox.mute_condition([mute], of="")).exists()
    ]
