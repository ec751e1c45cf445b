"""The overview page: one look at the inventory, recent changes and runs."""

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.views.generic import TemplateView

from inventory.choices import HostStatus
from inventory.models import Host
from portwatch.roles import RoleRequiredMixin
from scans.models import Change, ScanRun


class OverviewView(RoleRequiredMixin, TemplateView):
    template_name = "overview.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        # One pass over the hosts: their port summaries are kept by inventory.policy.
        context["host_counts"] = Host.objects.aggregate(
            total=Count("id"),
            unreachable=Count("id", filter=Q(status=HostStatus.UNREACHABLE)),
            open_ports=Coalesce(Sum("open_count"), 0),
            unreviewed=Coalesce(Sum("unreviewed_count"), 0),
            violating=Coalesce(Sum("violating_count"), 0),
        )
        context["hosts"] = Host.objects.select_related("zone").prefetch_related("tags").order_by("-last_change_at")[:20]
        context["changes"] = Change.objects.select_related("host", "run")[:20]
        context["runs"] = ScanRun.objects.select_related("target")[:10]
        return context
