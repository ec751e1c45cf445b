"""Vantage points on pages: ``{% load reach_tags %}``.

``vantage_status`` is the listening/silent badge; ``port_view_rows`` and
``host_view_rows`` build a vantage point's list rows in Python, escaped by
``format_html`` (names come from scanned hosts), for the reason
``inventory.templatetags.rows`` gives; ``reachable_from`` and ``host_reach``
are the port and host pages' sections (``reach.reachability``).
"""

from django import template
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from inventory.templatetags.rows import when
from reach import reachability

register = template.Library()


@register.simple_tag
def vantage_status(liveness):
    """A "listening" or "silent" badge; a silent one says since when (or never) beside it."""
    if liveness.listening:
        names = ", ".join(liveness.worker_names)
        return format_html('<span class="status status-listening" title="{}">{}</span>', names, liveness.status)
    since = liveness.describe().removeprefix(liveness.status).lstrip(": ")
    return format_html(
        '<span class="status status-silent" title="{}">{}</span> <span class="muted">{}</span>',
        "No live worker consumes its queue: its view is what it saw last (stale, not closed).",
        liveness.status,
        since,
    )


@register.simple_tag
def port_view_rows(views):
    return format_html_join("\n", "{}", ((_port_view_row(view),) for view in views))


def _port_view_row(view) -> str:
    host = view.host
    stale = format_html(' <span class="badge" title="{}">stale</span>', STALE_TITLE) if view.stale else ""
    return format_html(
        '<tr{}><td><a href="{}">{}</a> <span class="muted">{} {}</span></td>'
        '<td><a href="{}">{}/{}</a>{}</td><td>{}</td>{}{}</tr>',
        format_html(' class="stale" title="{}"', STALE_TITLE) if view.stale else "",
        host.get_absolute_url(),
        host.address,
        host.zone.name,
        host.hostname,
        reverse("port-detail", args=[host.public_id, view.protocol, view.port]),
        view.port,
        view.protocol,
        stale,
        view.name,
        when(view.first_seen),
        when(view.last_seen),
    )


STALE_TITLE = "The host stopped answering this vantage point: this is the last state seen from here."


@register.simple_tag
def host_view_rows(views):
    return format_html_join("\n", "{}", ((_host_view_row(view),) for view in views))


def _host_view_row(view) -> str:
    host = view.host
    return format_html(
        '<tr><td><a href="{}">{}</a> <span class="muted">{} {}</span></td>{}{}</tr>',
        host.get_absolute_url(),
        host.address,
        host.zone.name,
        host.hostname,
        when(view.last_seen),
        when(view.last_scanned),
    )


@register.inclusion_tag("reach/includes/reachable_from.html")
def reachable_from(host, protocol, port, service=None):
    return {"reach": reachability.of_port(host, protocol, port, service), "host": host}


@register.inclusion_tag("reach/includes/host_reach.html")
def host_reach(host):
    return {"reach": reachability.of_host(host), "host": host}
