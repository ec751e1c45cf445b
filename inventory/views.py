"""Pages of the inventory: hosts and their ports."""

from django.contrib import messages
from django.db import transaction
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse_lazy
from django.views import View
from django.views.generic import CreateView, DetailView, ListView, UpdateView

from inventory import audit
from inventory.audit import AuditedFormMixin
from inventory.choices import PortState
from inventory.filters import AuditFilter
from inventory.forms import RiskRuleForm, ZoneForm
from inventory.models import AuditEntry, Host, RiskRule, Zone
from portwatch.roles import Role, RoleRequiredMixin


class HostListView(RoleRequiredMixin, ListView):
    paginate_by = 100
    template_name = "inventory/host_list.html"

    def get_queryset(self):
        return (
            Host.objects.select_related("zone")
            .annotate(open_ports=Count("services", filter=Q(services__state=PortState.OPEN)))
            .order_by("zone__name", "address")
        )


class HostDetailView(RoleRequiredMixin, DetailView):
    slug_field = slug_url_kwarg = "public_id"
    template_name = "inventory/host_detail.html"

    def get_queryset(self):
        return Host.objects.select_related("zone", "seen_ports")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        services = self.object.services.all()
        context["open_services"] = [service for service in services if service.state != PortState.CLOSED]
        context["closed_services"] = [service for service in services if service.state == PortState.CLOSED]
        # The timeline reads the changes scans recorded for this host.
        context["changes"] = self.object.changes.select_related("run", "host")[:100]
        return context


class ZoneListView(RoleRequiredMixin, ListView):
    template_name = "inventory/zone_list.html"

    def get_queryset(self):
        return Zone.objects.annotate(
            host_count=Count("hosts", distinct=True), target_count=Count("targets", distinct=True)
        )


class ZoneCreateView(AuditedFormMixin, RoleRequiredMixin, CreateView):
    required_role = Role.ADMIN
    audit_name = "zone"
    model = Zone
    form_class = ZoneForm
    template_name = "inventory/zone_form.html"
    success_url = reverse_lazy("zone-list")

    def form_valid(self, form):
        messages.success(self.request, f"Zone “{form.instance.name}” saved.")
        return super().form_valid(form)


class ZoneUpdateView(ZoneCreateView, UpdateView):
    slug_field = slug_url_kwarg = "name"


class AuditListView(RoleRequiredMixin, ListView):
    """The audit log, newest first, with filters. Read-only for everyone."""

    paginate_by = 100
    template_name = "inventory/audit_list.html"

    def get_queryset(self):
        self.filterset = AuditFilter(self.request.GET or None, queryset=AuditEntry.objects.all())
        if self.filterset.is_bound and not self.filterset.is_valid():
            return AuditEntry.objects.none()
        return self.filterset.qs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["filter"] = self.filterset
        return context


class RiskListView(RoleRequiredMixin, ListView):
    """The risk table: everyone reads it, admins edit it."""

    model = RiskRule
    template_name = "inventory/risk_list.html"


class RiskCreateView(AuditedFormMixin, RoleRequiredMixin, CreateView):
    required_role = Role.ADMIN
    audit_name = "risk"
    model = RiskRule
    form_class = RiskRuleForm
    template_name = "inventory/risk_form.html"
    success_url = reverse_lazy("risk-list")

    def form_valid(self, form):
        messages.success(self.request, f"Risk rule “{form.instance.label}” saved.")
        return super().form_valid(form)


class RiskUpdateView(RiskCreateView, UpdateView):
    pass


class RiskDeleteView(RoleRequiredMixin, View):
    required_role = Role.ADMIN
    http_method_names = ["post"]

    def post(self, request, pk):
        rule = get_object_or_404(RiskRule, pk=pk)
        if rule.builtin:
            messages.error(request, f"“{rule.label}” is built in: lower its severity instead of removing it.")
            return redirect("risk-list")
        with transaction.atomic():
            audit.record(request.user, "risk.delete", rule, before=audit.snapshot(rule))
            rule.delete()
        messages.success(request, f"Risk rule “{rule.label}” removed.")
        return redirect("risk-list")
