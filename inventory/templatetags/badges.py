"""Badges for risk and policy, wherever a port is shown: ``{% load badges %}``.

``{% risk_badge protocol port name %}``, ``{% rule_badge risk_rule %}`` and
``{% policy_badge service show_rule=True %}``. Built in Python with
``format_html`` (every value escaped) rather than included templates: a list
shows them on each of its rows, and an include or inclusion tag renders a
whole template each time, which made them most of a page's rendering.
"""

from django import template
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from inventory.choices import PolicyStatus, PortState
from inventory.risk import RiskTable
from portwatch.choices_display import display
from portwatch.html import html

register = template.Library()

NOTHING = mark_safe('<span class="muted">–</span>')  # a constant, nothing to escape


@register.simple_tag(takes_context=True)
def risk_badge(context, protocol, port, name=""):
    request = context.get("request")
    table = getattr(request, "_risk_table", None)
    if table is None:
        table = RiskTable.load()
        if request is not None:
            request._risk_table = table  # one query per page, however many ports
    return rule_badge(table.for_port(protocol, port, name or ""))


@register.simple_tag
def rule_badge(rule):
    """A risk table entry: its severity and label, its category in the title."""
    if rule is None:
        return ""
    severity = display(rule, "severity")
    return html(
        '<span class="risk risk-{0}" title="{1}: {2} ({0} risk)">{0} · {1}</span>',
        severity,
        rule.label,
        display(rule, "category"),
    )


@register.simple_tag
def policy_badge(service, show_rule=False):
    """An open port's policy (a violation, approved, unreviewed...), its rule in the title and, if asked, a link."""
    if service.state != PortState.OPEN:
        return NOTHING
    status = service.policy_status or PolicyStatus.UNREVIEWED
    text = "violation" if status == PolicyStatus.REJECTED else PolicyStatus(status).label
    rule = service.policy_rule if service.policy_status else None
    if rule is None:
        return html('<span class="policy policy-{}">{}</span>', status, text)
    badge = html(
        '<span class="policy policy-{}" title="{}: {}">{}</span>',
        status,
        str(rule),
        Truncator(rule.justification).chars(200),
        text,
    )
    if show_rule:
        return html('{} <a class="small" href="{}">rule</a>', badge, rule.get_absolute_url())
    return badge
