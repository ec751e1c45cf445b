"""Pages of the scan engine: targets, runs."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views import View
from django.views.generic import CreateView, DetailView, ListView, UpdateView

from inventory import audit, paging
from inventory.audit import AuditedFormMixin
from inventory.views import FilteredListView
from portwatch.roles import Role, RoleRequiredMixin, has_role
from scans import scope_rules, services
from scans.filters import ChangeFilter
from scans.forms import ImportForm, ScanProfileForm, ScanTargetForm, ScopeRuleForm
from scans.ingest.imports import import_scan_file
from scans.models import Change, ScanProfile, ScanRun, ScanTarget, ScopeRule
from scans.nmap_xml import NmapXmlError
from scans.scope import ScopeError
from scans.targets import TargetSpecError


class TargetListView(paging.KeysetPaginationMixin, RoleRequiredMixin, ListView):
    model = ScanTarget
    paginate_by = 50
    template_name = "scans/target_list.html"

    def get_queryset(self):
        return ScanTarget.objects.select_related("zone", "profile")


class TargetDetailView(RoleRequiredMixin, DetailView):
    model = ScanTarget
    context_object_name = "target"
    slug_field = slug_url_kwarg = "public_id"
    template_name = "scans/target_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["runs"] = self.object.runs.select_related("requested_by", "vantage")[:20]
        context["vantage_points"] = services.vantage_points_of(self.object)
        return context


class TargetCreateView(AuditedFormMixin, RoleRequiredMixin, CreateView):
    required_role = Role.ADMIN
    audit_name = "target"
    model = ScanTarget
    form_class = ScanTargetForm
    template_name = "scans/target_form.html"

    def form_valid(self, form):
        form.instance.created_by = self.request.user
        response = super().form_valid(form)
        messages.success(self.request, f"Target “{self.object.name}” saved.")
        return response


class TargetUpdateView(AuditedFormMixin, RoleRequiredMixin, UpdateView):
    required_role = Role.ADMIN
    audit_name = "target"
    model = ScanTarget
    context_object_name = "target"
    form_class = ScanTargetForm
    slug_field = slug_url_kwarg = "public_id"
    template_name = "scans/target_form.html"

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, f"Target “{self.object.name}” saved.")
        return response


class TargetScanView(RoleRequiredMixin, View):
    """Scan now: the whole target, or one of its hosts (``address`` in POST)."""

    required_role = Role.ADMIN
    http_method_names = ["post"]

    def post(self, request, public_id):
        target = get_object_or_404(ScanTarget, public_id=public_id)
        only = request.POST.get("address") or None
        try:
            with transaction.atomic():
                runs = services.start_runs(target, requested_by=request.user, only=only)
                audit.record(request.user, "target.scan", target, summary=f"Scan now of {only or 'every target'}.")
        except (TargetSpecError, ScopeError) as error:
            messages.error(request, f"Not scanned: {error}")
            return redirect(target)
        if len(runs) == 1:
            messages.success(request, f"Scan of “{target.name}” queued.")
            return redirect(runs[0])
        where = ", ".join(run.vantage.name for run in runs)
        messages.success(request, f"Scan of “{target.name}” queued from {len(runs)} vantage points: {where}.")
        return redirect(target)


class RunListView(paging.KeysetPaginationMixin, RoleRequiredMixin, ListView):
    model = ScanRun
    paginate_by = 50
    template_name = "scans/run_list.html"

    def get_queryset(self):
        return ScanRun.objects.select_related("target", "zone", "profile", "requested_by", "vantage")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["any_active"] = any(not run.is_terminal for run in context["object_list"])
        return context


def change_row(change) -> dict:
    return {
        "at": change.created_at,
        "kind": change.kind,
        "address": change.host.address,
        "zone": change.host.zone.name,
        "protocol": change.protocol,
        "port": change.port,
        "before": change.before,
        "after": change.after,
        "flapping": change.flapping,
        "run": str(change.run.public_id) if change.run is not None else "",
        "vantage": change.vantage.name if change.vantage else None,
    }


class ChangeListView(FilteredListView):
    """Every change, newest first: what opened, closed or went quiet, and when."""

    filterset_class = ChangeFilter
    template_name = "scans/change_list.html"
    export_name = "changes"
    export_row = staticmethod(change_row)

    def base_queryset(self):
        return Change.objects.select_related("host__zone", "run__target", "vantage")

    def shown(self, queryset):
        # The changes table reads the host's address and the run's trigger:
        # not the run's and target's dozen other columns (exports keep them).
        return (
            queryset.select_related(None)
            .select_related("host", "run")
            .only(
                *("created_at", "kind", "protocol", "port", "before", "after", "host", "run", "vantage"),
                *("host__public_id", "host__address", "run__public_id", "run__trigger"),
            )
        )


class RunDetailView(RoleRequiredMixin, DetailView):
    model = ScanRun
    context_object_name = "run"
    slug_field = slug_url_kwarg = "public_id"
    template_name = "scans/run_detail.html"

    def get_queryset(self):
        return ScanRun.objects.select_related("target", "zone", "profile", "requested_by", "vantage")

    def get_template_names(self):
        # HTMX polls the progress panel alone while the run is going.
        if self.request.headers.get("HX-Request"):
            return ["scans/run_progress.html"]
        return [self.template_name]

    def render_to_response(self, context, **kwargs):
        response = super().render_to_response(context, **kwargs)
        if self.request.headers.get("HX-Request") and self.object.is_terminal:
            # The run just ended: reload the whole page for its chunks and changes.
            response["HX-Refresh"] = "true"
        return response

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["chunks"] = self.object.chunks.prefetch_related("tries")[:200]
        context["changes"] = self.object.changes.select_related("host")[:200]
        return context


class RunCancelView(RoleRequiredMixin, View):
    required_role = Role.ADMIN
    http_method_names = ["post"]

    def post(self, request, public_id):
        run = get_object_or_404(ScanRun, public_id=public_id)
        with transaction.atomic():
            cancelled = services.cancel_run(run)
            if cancelled:
                audit.record(request.user, "run.cancel", run)
        if cancelled:
            messages.success(request, "Cancelling the run: running nmap processes are being stopped.")
        else:
            messages.info(request, "The run had already finished.")
        return redirect(run)


class ProfileListView(RoleRequiredMixin, ListView):
    model = ScanProfile
    template_name = "scans/profile_list.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(**kwargs, masscan_max_rate=settings.MASSCAN_MAX_RATE)


class ProfileCreateView(AuditedFormMixin, RoleRequiredMixin, CreateView):
    required_role = Role.ADMIN
    audit_name = "profile"
    model = ScanProfile
    form_class = ScanProfileForm
    template_name = "scans/profile_form.html"
    success_url = reverse_lazy("profile-list")

    def form_valid(self, form):
        messages.success(self.request, f"Profile “{form.instance.name}” saved.")
        return super().form_valid(form)


class ProfileUpdateView(ProfileCreateView, UpdateView):
    slug_field = slug_url_kwarg = "slug"

    def get_queryset(self):
        # Built-in profiles are part of PortWatch: they are not edited.
        return ScanProfile.objects.filter(builtin=False)


class ScopeView(RoleRequiredMixin, View):
    """The scan scope: every user may read it, admins add and remove rules."""

    template_name = "scans/scope.html"

    def get(self, request, form=None):
        return render(
            request,
            self.template_name,
            {"rules": ScopeRule.objects.select_related("created_by"), "form": form or ScopeRuleForm()},
            status=400 if form is not None else 200,
        )

    def post(self, request):
        if not has_role(request.user, Role.ADMIN):
            raise PermissionDenied("Changing the scan scope needs the admin role.")
        form = ScopeRuleForm(request.POST)
        if not form.is_valid():
            return self.get(request, form)
        try:
            rule = scope_rules.add_scope_rule(form, request.user)
        except ValidationError as error:
            form.add_error("network", error)
            return self.get(request, form)
        messages.success(request, f"Scope rule added: {rule.action} {rule.network}.")
        return redirect("scope")


class ScopeRuleDeleteView(RoleRequiredMixin, View):
    required_role = Role.ADMIN
    http_method_names = ["post"]

    def post(self, request, pk):
        rule = get_object_or_404(ScopeRule, pk=pk)
        try:
            scope_rules.remove_scope_rule(rule, request.user)
        except scope_rules.ScopeRuleLocked as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"Scope rule removed: {rule.action} {rule.network}.")
        return redirect("scope")


class ImportView(RoleRequiredMixin, View):
    """Upload a scan file (nmap XML, masscan XML or JSON). Oversized uploads are
    refused (413) before they are read; a bad file is refused with the reason
    and writes nothing."""

    required_role = Role.ADMIN
    template_name = "scans/import.html"

    def get(self, request):
        return render(request, self.template_name, {"form": ImportForm()})

    def post(self, request):
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > settings.IMPORT_MAX_BYTES + 64 * 1024:
            form = ImportForm()
            form.errors["file"] = form.error_class(
                [
                    f"The upload is {declared / 1048576:.1f} MB; imports are limited to "
                    f"{settings.IMPORT_MAX_BYTES / 1048576:.0f} MB (IMPORT_MAX_BYTES)."
                ]
            )
            return render(request, self.template_name, {"form": form}, status=413)
        form = ImportForm(request.POST, request.FILES)
        if not form.is_valid():
            status = 413 if form.has_error("file", "too_large") else 400
            return render(request, self.template_name, {"form": form}, status=status)
        upload = form.cleaned_data["file"]
        try:
            run = import_scan_file(
                upload,
                zone=form.cleaned_data["zone"],
                requested_by=request.user,
                name=upload.name,
                # Uploads above FILE_UPLOAD_MAX_MEMORY_SIZE are on disk: parsed in parallel.
                path=upload.temporary_file_path() if hasattr(upload, "temporary_file_path") else None,
            )
        except NmapXmlError as error:
            form.add_error("file", f"{error} Nothing was imported.")
            audit.record(
                request.user,
                "import.refuse",
                object_type="scan file",
                object_repr=upload.name[:255],
                summary=str(error),
            )
            return render(request, self.template_name, {"form": form}, status=400)
        concluded = " masscan's silence concludes nothing: no port was closed." if run.is_masscan else ""
        messages.success(
            request,
            f"Imported {upload.name}: {run.hosts_total} host(s), {run.changes.count()} change(s).{concluded}",
        )
        return redirect(run)
