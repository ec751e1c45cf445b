"""Pages of vantage points: where scans come from, whether anyone scans from there, and what each one sees."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import CreateView, ListView, UpdateView

from inventory import paging
from inventory.audit import AuditedFormMixin
from inventory.choices import HostStatus, PortState
from portwatch.roles import Role, RoleRequiredMixin
from reach import services
from reach.filters import HostViewFilter, PortViewFilter
from reach.forms import VantagePointForm
from reach.liveness import Board
from reach.models import HostView, PortView, VantagePoint
from scans.models import ScanTarget

# The two lists of a vantage point's page (``?show=``).
SHOW_PORTS, SHOW_HOSTS = "ports", "hosts"


class VantageListView(paging.KeysetPaginationMixin, RoleRequiredMixin, ListView):
    """Every vantage point: its queue, its live workers, listening or silent."""

    paginate_by = 50
    template_name = "reach/vantage_list.html"

    def get_queryset(self):
        return VantagePoint.objects.select_related("home_of").order_by("name")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        board = Board.read()
        for vantage in context["object_list"]:
            vantage.liveness = board.of(vantage)
        return context


class VantageDetailView(RoleRequiredMixin, View):
    """One vantage point: its workers and status, where targets scan from it, and its view.

    A zone's home sees what the inventory holds: its page links to the
    inventory's lists instead of repeating them. Another vantage point's view
    is its open ports (``?show=ports``, the default) and the hosts that do not
    answer it (``?show=hosts``), each keyset-paged and filtered by zone (ports
    also by port).
    """

    paginate_by = 50
    template_name = "reach/vantage_detail.html"

    def get(self, request, name):
        vantage = get_object_or_404(VantagePoint.objects.select_related("home_of"), name=name)
        context = {
            "vantage": vantage,
            "liveness": Board.read().of(vantage),
            "targets": self.targets(vantage),
        }
        if not vantage.is_home:
            context.update(self.view_of(request, vantage))
        return render(request, self.template_name, context)

    @staticmethod
    def targets(vantage) -> list:
        """Targets scanned from here (a home also scans those of its zone with none chosen); at most 20."""
        chosen = ScanTarget.objects.filter(vantage_points=vantage)
        if vantage.is_home:
            chosen = chosen | ScanTarget.objects.filter(zone=vantage.home_of, vantage_points__isnull=True)
        return list(chosen.distinct().order_by("name")[:20])

    def view_of(self, request, vantage) -> dict:
        show = SHOW_HOSTS if request.GET.get("show") == SHOW_HOSTS else SHOW_PORTS
        if show == SHOW_HOSTS:
            base = HostView.objects.filter(vantage=vantage, status=HostStatus.UNREACHABLE)
            filterset = HostViewFilter(request.GET, queryset=base)
        else:
            base = PortView.objects.filter(vantage=vantage, state=PortState.OPEN)
            filterset = PortViewFilter(request.GET, queryset=base)
        rows = filterset.qs if filterset.is_valid() else base.none()
        # By host, as the indexes hold them (reach.models): every page costs the first's.
        order = ["host_id", "protocol", "port"] if show == SHOW_PORTS else ["host_id"]
        rows = rows.select_related("host__zone").order_by(*order)
        return {"show": show, "filter": filterset, "page": paging.page_for(request, rows, self.paginate_by)}


class VantageCreateView(AuditedFormMixin, RoleRequiredMixin, CreateView):
    required_role = Role.ADMIN
    audit_name = "vantage"
    model = VantagePoint
    form_class = VantagePointForm
    template_name = "reach/vantage_form.html"

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(
            self.request,
            f"Vantage point “{self.object.name}” saved. Start its workers where its scans must come from: "
            f"python3 manage.py run_worker --vantage {self.object.name}",
        )
        return response


class VantageUpdateView(AuditedFormMixin, RoleRequiredMixin, UpdateView):
    required_role = Role.ADMIN
    audit_name = "vantage"
    model = VantagePoint
    form_class = VantagePointForm
    slug_field = slug_url_kwarg = "name"
    context_object_name = "vantage"
    template_name = "reach/vantage_form.html"

    def get_queryset(self):
        return VantagePoint.objects.select_related("home_of")

    def form_valid(self, form):
        old = VantagePoint.objects.get(pk=form.instance.pk)
        response = super().form_valid(form)
        if old.name != self.object.name:
            restart = (
                f"restart its scanners with PORTWATCH_SCANNER_VANTAGE={self.object.name}"
                if self.object.remote
                else f"restart them with python3 manage.py run_worker --vantage {self.object.name}"
            )
            messages.warning(
                self.request,
                f"Renamed: its queue is now {self.object.queue}. Workers started for “{old.name}” still consume "
                f"{old.queue}; {restart}.",
            )
        messages.success(self.request, f"Vantage point “{self.object.name}” saved.")
        return response


class VantageDeleteView(RoleRequiredMixin, View):
    required_role = Role.ADMIN
    http_method_names = ["post"]

    def post(self, request, name):
        vantage = get_object_or_404(VantagePoint.objects.select_related("home_of"), name=name)
        try:
            services.delete_vantage(vantage, request.user)
        except services.VantageInUse as error:
            messages.error(request, f"Not deleted: {error}")
            return redirect(vantage)
        messages.success(request, f"Vantage point “{vantage.name}” deleted.")
        return redirect(reverse("vantage-list"))
