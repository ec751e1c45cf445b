"""The host's own view on the host and port pages: ``{% load listener_tags %}``.

``host_listeners`` is the host page's section, ``port_listeners`` the port
page's line (``listeners.reconcile``). Process names and users come from the
hosts: the templates escape them like every other text from a host.
"""

from django import template

from listeners import reconcile
from portwatch.roles import Role, role_of

register = template.Library()


@register.inclusion_tag("listeners/includes/host_view.html", takes_context=True)
def host_listeners(context, host):
    view = reconcile.for_host(host)
    return {"view": view, "can_upload": role_of(context["request"].user) >= Role.REVIEWER}


@register.inclusion_tag("listeners/includes/port_view.html")
def port_listeners(host, protocol, port):
    view = reconcile.for_host(host, protocol=protocol, port=int(port))
    return {"view": view, "found": view.ports[0] if view.ports else None}
