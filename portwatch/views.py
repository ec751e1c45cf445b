"""The overview page: one look at the inventory, recent changes and runs."""

from django.db.models import Count, Q
from django.views.generic import TemplateView

from inventory.choices import HostStatus, PortState
from inventory.models import Host, Service
from portwatch.roles import RoleRequiredMixin
from scans.models import Change, ScanRun


class OverviewView(RoleRequiredMixin, TemplateView):
    template_name = "overview.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        hosts = Host.objects.aggregate(
            total=Count("id"), unreachable=Count("id", filter=Q(status=HostStatus.UNREACHABLE))
        )
        context["host_counts"] = hosts
        context["open_ports"] = Service.objects.filter(state=PortState.OPEN).count()
        context["hosts"] = (
            Host.objects.select_related("zone")
            .annotate(open_ports=Count("services", filter=Q(services__state=PortState.OPEN)))
            .order_by("-last_seen")[:20]
        )
        context["changes"] = Change.objects.select_related("host", "run")[:20]
        context["runs"] = ScanRun.objects.select_related("target")[:10]
        return context
