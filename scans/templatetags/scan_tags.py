"""Template tags the scan engine lends to other apps' pages."""

from django import template
from django.utils.safestring import mark_safe

from inventory.models import PORT_URL
from inventory.templatetags.badges import risk_badge
from inventory.templatetags.rows import when
from portwatch.choices_display import display
from portwatch.html import html, html_join
from reach.models import VANTAGE_URL, VantagePoint
from scans.choices import CERTIFICATE_KINDS, LISTENER_KINDS
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
    if state.get("mode") and state.get("vantage"):
        # A segmentation change (reach.segmentation): the rule's mode and the vantage point.
        return html('<span class="badge">{}</span> from {}', state["mode"], state["vantage"])
    if "addresses" in state and "scope" in state:
        # A listener change (listeners.reports): where it listens, and which process, as the host reported.
        addresses = ", ".join("every address" if address == "*" else str(address) for address in state["addresses"])
        process = html(" by {}", state["process"]) if state.get("process") else ""
        return html(
            '<span class="finding">{}</span> {}{}',
            str(state["scope"]).replace("all", "all interfaces"),
            addresses,
            process,
        )
    if "fingerprint" in state:
        # A certificate change (certs): its subject, end and fingerprint, as the scanned host served them.
        return html(
            '{} <span class="muted">until {} · {}…</span>',
            state.get("subject") or "(no subject)",
            str(state.get("not_after") or "")[:10],
            str(state["fingerprint"])[:16],
        )
    parts = []
    for key in ("state", "status"):
        if state.get(key):
            parts.append(html('<span class="state state-{0}">{0}</span>', state[key]))
    text = " ".join(str(state.get(key) or "") for key in ("name", "product", "version"))
    hostnames = state.get("hostnames")
    if hostnames:
        text += ", ".join(str(name) for name in hostnames)
    return html("{} {}", html_join("", "{}", ((part,) for part in parts)), text)


@register.simple_tag(takes_context=True)
def change_rows(context, changes, show_run=False):
    """The changes table's rows, built in Python for the reason ``inventory.templatetags.rows`` gives."""
    # Where each change was seen from: the vantage points' names, read once (a few rows).
    vantages = dict(VantagePoint.objects.values_list("pk", "name"))
    return html_join("\n", "{}", ((_change_row(context, change, show_run, vantages),) for change in changes))


def _change_row(context, change, show_run: bool, vantages: dict) -> str:
    host = change.host
    port = ""
    if change.port:
        port = html(
            '<a href="{}">{}/{}</a> {}',
            PORT_URL(host.public_id, change.protocol, change.port),
            change.port,
            change.protocol,
            risk_badge(context, change.protocol, change.port, (change.after or {}).get("name", "")),
        )
    run = ""
    if show_run and change.run is None and change.kind in LISTENER_KINDS:
        run = mark_safe('<td><span class="muted">the host\'s report</span></td>')
    elif show_run and change.run is None and change.kind in CERTIFICATE_KINDS:
        # An expiry reminder (certs.expiry): beat's, on a schedule.
        run = mark_safe('<td><span class="muted">expiry check</span></td>')
    elif show_run and change.run is None:
        # It follows from a rule (reach.segmentation), not from a scan.
        run = mark_safe('<td><span class="muted">a rule</span></td>')
    elif show_run:
        run = html('<td><a href="{}">{}</a></td>', change.run.get_absolute_url(), display(change.run, "trigger"))
    where = ""
    if change.vantage_id in vantages:
        name = vantages[change.vantage_id]
        where = html(' <a class="muted" href="{}">from {}</a>', VANTAGE_URL(name), name)
    return html(
        '<tr>{}<td><span class="badge kind-{}">{}</span>{}</td><td><a href="{}">{}</a></td><td>{}</td>'
        "<td>{}</td><td>{}</td>{}</tr>",
        when(change.created_at),
        change.kind,
        display(change, "kind"),
        where,
        host.get_absolute_url(),
        host.address,
        port,
        change_state(change.before),
        change_state(change.after),
        run,
    )
