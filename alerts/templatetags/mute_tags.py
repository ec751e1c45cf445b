"""The host page's maintenance windows: ``{% load mute_tags %}{% host_mutes host %}``.

A template tag, so that the inventory's pages need not import the alerts app
(alerts read the inventory, never the other way round).
"""

from django import template
from django.urls import reverse
from django.utils.http import urlencode

from alerts import mutes
from portwatch.roles import Role, role_of

register = template.Library()


@register.inclusion_tag("alerts/includes/host_mutes.html", takes_context=True)
def host_mutes(context, host):
    query = urlencode({"scope": "host", "host_address": host.address, "reason": ""})
    return {
        "mutes": mutes.covering(host),
        "can_mute": role_of(context["request"].user) >= Role.REVIEWER,
        "mute_url": f"{reverse('mute-create')}?{query}",
    }
