"""Column headings that sort the list: ``{% load sorting %}{% sort_th "Open" "open" %}``.

On a list whose filters offer that sort (the ``sort`` choice of its
FilterSet), the heading is a link to the same list sorted by it, its other
filters kept and its cursor dropped (a new order starts at the first page);
the current order is marked (``aria-sort``, an arrow). Elsewhere (the
overview's short lists) it is a plain heading.
"""

from django import template
from django.utils.html import format_html

from inventory.paging import CURSOR_PARAM

register = template.Library()


@register.simple_tag(takes_context=True)
def sort_th(context, label: str, key: str):
    request, list_filter = context.get("request"), context.get("filter")
    field = getattr(getattr(list_filter, "form", None), "fields", {}).get("sort")
    if request is None or field is None or key not in {value for value, _ in field.choices}:
        return format_html("<th>{}</th>", label)
    query = request.GET.copy()
    query.pop(CURSOR_PARAM, None)
    query.pop("page", None)
    if key:
        query["sort"] = key
    else:
        query.pop("sort", None)
    href = f"?{query.urlencode()}" if query else request.path
    if request.GET.get("sort", "") != key:
        return format_html('<th><a href="{}" title="Sort by {}">{}</a></th>', href, label.lower(), label)
    descending = str(list_filter.ordering(key)[0]).startswith("-")
    return format_html(
        '<th aria-sort="{}"><a href="{}">{} <span aria-hidden="true">{}</span></a></th>',
        "descending" if descending else "ascending",
        href,
        label,
        "▼" if descending else "▲",
    )
