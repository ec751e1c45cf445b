"""Template tags the scan engine lends to other apps' pages."""

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from scans.targets import parse_target, parse_targets

register = template.Library()


def targets_covering(host) -> list:
    """The enabled scan targets of the host's zone whose items cover its address."""
    address = parse_target(host.address).first
    covering = []
    for target in host.zone.targets.filter(enabled=True).order_by("name"):
        for item in parse_targets(target.targets):
            if item.first is not None and item.first.version == address.version and item.first <= address <= item.last:
                covering.append(target)
                break
    return covering


@register.inclusion_tag("scans/includes/scan_host_buttons.html", takes_context=True)
def scan_host_buttons(context, host):
    """ "Scan this host now" through each target that covers it (admins only)."""
    return {
        "host": host,
        "targets": targets_covering(host) if context.get("can_admin") else [],
        "csrf_token": context.get("csrf_token"),
    }


@register.simple_tag
def change_state(state):
    """A change's before or after: state or status, then the service, escaped.

    Built in Python, not an included template: the changes table shows it
    twice per row, and an include costs about ten times as much.
    """
    if not state:
        return mark_safe('<span class="muted">–</span>')
    parts = []
    for key in ("state", "status"):
        if state.get(key):
            parts.append(format_html('<span class="state state-{0}">{0}</span>', state[key]))
    text = " ".join(str(state.get(key) or "") for key in ("name", "product", "version"))
    hostnames = state.get("hostnames")
    if hostnames:
        text += ", ".join(str(name) for name in hostnames)
    return format_html("{} {}", format_html_join("", "{}", ((part,) for part in parts)), text)
