"""The rows of the host and port lists: ``{% load rows %}``, ``{% host_rows hosts %}``, ``{% service_rows services %}``.

A list page shows up to a page of rows, and Django's template engine spends
about a millisecond on each (every ``{{ }}`` is resolved by trying dict,
attribute and index lookups in turn); under load that was most of a list's
CPU time. The rows are built here with ``format_html``, which escapes every
value as the templates did. The table around them (headers, empty states)
stays in ``templates/includes/``.
"""

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import timezone

from inventory.choices import PortState
from inventory.models import tags_of
from inventory.templatetags.badges import policy_badge, risk_badge
from portwatch.choices_display import display
from portwatch.html import html, html_join

register = template.Library()


def when(value) -> str:
    """A time as "3 hours ago": the exact instant in the person's zone in its title (a pointer's hover)
    and, where there is no hover (a phone's stacked rows, portwatch.css), written out beside it."""
    if value is None:
        return html('<td class="muted">–</td>')
    local = timezone.localtime(value)
    return html(
        '<td><time datetime="{}" title="{}">{}</time></td>',
        local.isoformat(),
        local.strftime("%Y-%m-%d %H:%M %Z"),
        naturaltime(value),
    )


def counted(value: int, css: str) -> str:
    return html('<td class="{}">{}</td>', css, value) if value else html("<td>{}</td>", value)


def _names(host) -> str:
    """The name people gave it (web-1), then the hostname the network gave it."""
    if host.name and host.hostname:
        return html('<strong>{}</strong> <span class="muted">{}</span>', host.name, host.hostname)
    return html("<strong>{}</strong>", host.name) if host.name else host.hostname


@register.simple_tag
def host_rows(hosts):
    return html_join("\n", "{}", ((_host_row(host),) for host in hosts))


def _host_row(host) -> str:
    tags = html_join("", '<span class="tag">{}</span>', ((tag.name,) for tag in tags_of(host)))
    risk = host.risk_label
    return html(
        '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}{}'
        '<td>{}</td><td><span class="status status-{}">{}</span></td>{}</tr>',
        host.get_absolute_url(),
        host.address,
        _names(host),
        host.zone.name,
        tags,
        host.owner,
        host.open_count,
        counted(host.unreviewed_count, "count-warn"),
        counted(host.violating_count, "count-bad"),
        html('<span class="risk risk-{0}">{0}</span>', risk) if risk else "",
        host.status,
        display(host, "status"),
        when(host.last_scanned),
    )


@register.simple_tag(takes_context=True)
def service_rows(context, services):
    can_review = bool(context.get("can_review"))
    return html_join("\n", "{}", ((_service_row(context, service, can_review),) for service in services))


def _service_row(context, service, can_review: bool) -> str:
    host = service.host
    choose = ""
    if can_review:
        box = ""
        if service.state == PortState.OPEN:
            box = html(
                '<input type="checkbox" name="token" form="review" value="{}" aria-label="Choose {} {}/{}">',
                getattr(service, "review_token", ""),  # set by the view for reviewers
                host.address,
                service.port,
                service.protocol,
            )
        choose = html("<td>{}</td>", box)
    return html(
        '<tr>{}<td><a href="{}">{}</a> <span class="muted">{}</span></td><td>{}</td><td><a href="{}">{}/{}</a></td>'
        '<td><span class="state state-{}">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>',
        choose,
        host.get_absolute_url(),
        host.address,
        _names(host),
        host.zone.name,
        service.get_absolute_url(),
        service.port,
        service.protocol,
        service.state,
        display(service, "state"),
        policy_badge(service, show_rule=True),
        risk_badge(context, service.protocol, service.port, service.name),
        service.name,
        service.label,
        when(service.first_seen),
    )
