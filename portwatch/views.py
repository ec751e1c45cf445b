"""The overview page: one look at the inventory, its freshness, recent changes and runs.

The figures poll (HTMX, every settings.OVERVIEW_POLL_SECONDS) from the same view: an
HTMX request gets the live panel alone, and the chart on the page redraws
from the series that panel carries (static/js/overview.js).
"""

import json

from django.conf import settings
from django.core.exceptions import BadRequest
from django.http import HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone
from django.views.generic import TemplateView

from inventory import paging
from inventory.models import Host
from portwatch import dashboard
from portwatch.roles import RoleRequiredMixin
from scans.models import Change, ScanRun


class OverviewView(RoleRequiredMixin, TemplateView):
    template_name = "overview.html"

    def get_template_names(self):
        if self.request.headers.get("HX-Request"):
            return ["includes/overview_poll.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        counts, freshness = dashboard.host_figures(now)
        chart_range = self.request.GET.get("range")
        if chart_range not in dashboard.CHART_RANGES:
            chart_range = dashboard.CHART_DEFAULT_RANGE
        context.update(
            counts=counts,
            change_counts=dashboard.change_counts(now),
            backlog=dashboard.review_backlog(now),
            freshness=freshness,
            chart_json=json.dumps(dashboard.chart_series(chart_range, now, counts)),
            chart_range=chart_range,
            chart_ranges=dashboard.CHART_RANGES,
            poll_seconds=settings.OVERVIEW_POLL_SECONDS,
            snapshot_minutes=settings.SNAPSHOT_MINUTES,
            changes=Change.objects.select_related("host", "run")[:15],
            runs=ScanRun.objects.select_related("target")[:8],
            hosts=Host.objects.select_related("zone").prefetch_related("tags").order_by("-last_change_at")[:10],
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
