"""The overview page: one look at the inventory, its freshness, recent changes and runs.

The figures poll (HTMX, every settings.OVERVIEW_POLL_SECONDS) from the same view: an
HTMX request gets the live panel alone, and the chart on the page redraws
from the series that panel carries (static/js/overview.js).
"""

from django.conf import settings
from django.core.exceptions import BadRequest
from django.http import HttpResponseBadRequest
from django.shortcuts import render
from django.views.generic import TemplateView

from inventory import paging
from portwatch import dashboard, overview_fragments
from portwatch.roles import RoleRequiredMixin


class OverviewView(RoleRequiredMixin, TemplateView):
    template_name = "overview.html"

    def get_template_names(self):
        if self.request.headers.get("HX-Request"):
            return ["includes/overview_poll.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        chart_range = self.request.GET.get("range")
        if chart_range not in dashboard.CHART_RANGES:
            chart_range = dashboard.CHART_DEFAULT_RANGE
        context.update(
            dashboard.overview(chart_range),
            chart_range=chart_range,
            chart_ranges=dashboard.CHART_LABELS,
            poll_seconds=settings.OVERVIEW_POLL_SECONDS,
            cache_seconds=settings.OVERVIEW_CACHE_SECONDS,
            snapshot_minutes=settings.SNAPSHOT_MINUTES,
        )
        # The poll swaps the recent lists in out of band (overview_poll.html).
        polled = bool(self.request.headers.get("HX-Request"))
        context["live_html"] = overview_fragments.rendered(overview_fragments.LIVE, context, self.request)
        context["recent_html"] = overview_fragments.rendered(
            overview_fragments.RECENT, context, self.request, oob=polled
        )
        return context


def bad_request(request, exception):
    """A 400 that says what was wrong (``BadRequest`` messages are written for people);
    other 400s (a disallowed host, a suspicious request) keep Django's bare answer."""
    if not isinstance(exception, BadRequest):
        return HttpResponseBadRequest("<h1>Bad Request (400)</h1>")
    context = {"message": str(exception)}
    if isinstance(exception, paging.InvalidCursor):
        query = request.GET.copy()
        query.pop(paging.CURSOR_PARAM, None)
        query.pop("page", None)
        context["first_page"] = f"{request.path}?{query.urlencode()}" if query else request.path
    return render(request, "400.html", context, status=400)
