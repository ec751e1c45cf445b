"""The overview's live panel and recent lists, rendered once per reading of the figures and shared.

The figures are read once per ``OVERVIEW_CACHE_SECONDS`` and shared by
every viewer (``portwatch.dashboard.overview``), but each viewer's request
still rendered them: the changes, runs and hosts tables were most of an
overview's CPU time, and a wall of open overviews polls every
``OVERVIEW_POLL_SECONDS``.

What a fragment renders depends on the reading (its ``read_at``), the
viewer's time zone (every time shown), role (an empty list's hints) and the
page's query (links that keep it), and on nothing else of the request (no
form, no CSRF token, no name: tests/test_dashboard.py checks it). With
those in the key, a viewer gets the HTML they would have rendered from the
same reading; "3 minutes ago" is counted from when the reading's first
viewer rendered it, at most ``OVERVIEW_CACHE_SECONDS`` earlier. Without a
working cache each request renders its own.
"""

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from portwatch.roles import role_of
from portwatch.shared_reading import shared

LIVE = "includes/overview_live.html"
RECENT = "includes/overview_recent.html"


def _key(template: str, context: dict, request, oob: bool) -> str:
    return ":".join(
        [
            "overview-html",
            template,
            str(context["chart_range"]),
            timezone.get_current_timezone_name(),
            str(int(role_of(request.user))),
            request.GET.urlencode(),
            context["read_at"].isoformat(),
            "oob" if oob else "",
        ]
    )


def _shared(request, context) -> bool:
    """Only the overview's own query is shared: any other (links keep it) is rendered for itself,
    so made-up queries cannot fill the cache."""
    return (
        all(name == "range" for name in request.GET)
        and request.GET.get("range", context["chart_range"]) == (context["chart_range"])
    )


def rendered(template: str, context: dict, request, *, oob: bool = False) -> SafeString:
    """``{% include template %}`` (with ``oob``) for this viewer, shared with those who see the same."""
    html = shared(
        _key(template, context, request, oob),
        settings.OVERVIEW_CACHE_SECONDS if _shared(request, context) else 0,
        lambda: str(render_to_string(template, {**context, "oob": oob}, request=request)),
        what="overview rendering",
    )
    return mark_safe(html)  # noqa: S308 - rendered by the templates, which escape
