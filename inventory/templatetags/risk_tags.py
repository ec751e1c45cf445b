"""``{% risk_badge protocol port name %}``: the risk of a port, wherever a port is shown."""

from django import template

from inventory.risk import RiskTable

register = template.Library()


@register.inclusion_tag("includes/risk_badge.html", takes_context=True)
def risk_badge(context, protocol, port, name=""):
    request = context.get("request")
    table = getattr(request, "_risk_table", None)
    if table is None:
        table = RiskTable.load()
        if request is not None:
            request._risk_table = table  # one query per page, however many ports
    return {"rule": table.for_port(protocol, port, name or "")}
