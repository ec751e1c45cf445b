"""Pages of the inventory: hosts and their ports."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import CreateView, DetailView, ListView, UpdateView

from inventory import audit, exports, paging, policy, review
from inventory.audit import AuditedFormMixin
from inventory.choices import Decision, PortState
from inventory.filters import AuditFilter, HostFilter, ServiceFilter
from inventory.forms import HostForm, ReviewForm, RiskRuleForm, ZoneForm, tags_named
from inventory.models import AuditEntry, Host, HostTag, RiskRule, Service, Zone, with_tag_list
from portwatch.roles import Role, RoleRequiredMixin
from scans.models import Change, ScanRun
from tallies import read
from tallies.choices import Figure

# The columns a list's rows show (each timestamp or JSON column left out is a parse
# less per row), with the sort keys of inventory.filters' orders. A column the
# rows read that is missing here costs a query per row: tests/test_browse.py
# counts the queries of these lists with 5 and with 60 rows.
HOST_ROW_FIELDS = (
    *("public_id", "address", "name", "hostnames", "zone", "zone__name", "owner", "status", "last_scanned"),
    *("open_count", "unreviewed_count", "violating_count", "risk", "last_change_at"),
)
_RULE_ROW_FIELDS = (
    *("public_id", "decision", "scope", "protocol", "port_start", "port_end", "cidr", "justification"),
    *("zone", "zone__name", "tag", "tag__name", "host", "host__address", "host__zone", "host__zone__name"),
)
SERVICE_ROW_FIELDS = (
    *("host", "protocol", "port", "state", "name", "product", "version", "first_seen", "policy_status", "risk"),
    *("host__public_id", "host__address", "host__name", "host__hostnames", "host__zone", "host__zone__name"),
    "policy_rule",
    *(f"policy_rule__{field}" for field in _RULE_ROW_FIELDS),
)


class FilteredListView(RoleRequiredMixin, View):
    """A list with django-filter filters, keyset pages (``inventory.paging``), and CSV/JSON export."""

    filterset_class = None
    template_name = ""
    export_name = ""
    # Fifty rows: a screen or two, and half the rendering of a hundred (rows
    # are most of a list's CPU time under load; bench-load). Exports and the
    # API (page_size up to 500) are for reading many.
    paginate_by = 50

    def base_queryset(self):
        raise NotImplementedError

    def export_row(self, item) -> dict:
        raise NotImplementedError

    def get(self, request):
        # Always bound (an empty query is valid): the default state and order apply.
        filterset = self.filterset_class(request.GET, queryset=self.base_queryset(), request=request)
        queryset = filterset.qs if filterset.is_valid() else self.base_queryset().none()
        export = request.GET.get("format")
        if export in ("csv", "json"):
            return exports.respond(export, self.export_name, self.export_rows(queryset), self.export_row)
        page = paging.page_for(request, self.shown(queryset), self.paginate_by)
        return render(request, self.template_name, self.context(filter=filterset, page=page))

    def shown(self, queryset):
        """The rows as the page shows them: a list may load only the columns its
        table shows (each timestamp and JSON column costs a parse per row)."""
        return queryset

    def export_rows(self, queryset):
        return queryset.iterator(chunk_size=exports.CHUNK)

    def context(self, **context) -> dict:
        return context


class HostListView(FilteredListView):
    filterset_class = HostFilter
    template_name = "inventory/host_list.html"
    export_name = "hosts"
    export_row = staticmethod(exports.host_row)

    def base_queryset(self):
        return with_tag_list(Host.objects.select_related("zone"))

    def shown(self, queryset):
        # What inventory.templatetags.rows.host_rows shows, and every sort's keys (exports keep all columns).
        return queryset.only(*HOST_ROW_FIELDS)


class ServiceListView(FilteredListView):
    """Ports across all hosts: "every host with 6379 open", "everything unreviewed in dc1"."""

    filterset_class = ServiceFilter
    template_name = "inventory/service_list.html"
    export_name = "ports"
    export_row = staticmethod(exports.service_row)

    def base_queryset(self):
        # The rule's scope names its zone, tag or host (the policy badge's title).
        return Service.objects.select_related(
            "host__zone", "policy_rule__zone", "policy_rule__tag", "policy_rule__host__zone"
        )

    def shown(self, queryset):
        # What inventory.templatetags.rows.service_rows and the policy badge show, and every
        # sort's keys: not the scripts' JSON, the other timestamps or the rules' other columns.
        return queryset.only(*SERVICE_ROW_FIELDS)

    def context(self, **context):
        for service in context["page"].object_list:
            service.review_token = review.token_for(service)
        context["review_form"] = ReviewForm()
        return context


class ReviewQueueView(ServiceListView):
    """Unreviewed and violating ports, violations and the riskiest first, to decide on in bulk."""

    template_name = "inventory/review_queue.html"

    def get(self, request):
        if "policy" not in request.GET:
            query = request.GET.copy()
            query["policy"] = "queue"
            request.GET = query
        return super().get(request)


class DecideView(RoleRequiredMixin, View):
    """POST one decision for the chosen ports (from the queue, the ports list or a port page)."""

    required_role = Role.REVIEWER
    http_method_names = ["post"]

    def post(self, request):
        tokens = request.POST.getlist("token")
        form = ReviewForm(request.POST, tokens=tokens)
        back = url_has_allowed_host_and_scheme(
            request.POST.get("next", ""), allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        next_url = request.POST["next"] if back else reverse("review-queue")
        if not form.is_valid():
            for field, errors in form.errors.items():
                label = form.fields[field].label or field.replace("_", " ") if field != "__all__" else ""
                for error in errors:
                    messages.error(request, f"{label.capitalize() + ': ' if label else ''}{error}")
            return redirect(next_url)
        try:
            outcome = review.decide(request.user, tokens, form.request())
        except review.ReviewConflict as conflict:
            messages.error(
                request,
                "Nothing was applied: another reviewer decided first. "
                + "; ".join(str(item) for item in conflict.conflicts[:10])
                + ". Look again and decide anew.",
            )
            return redirect(next_url)
        except ValidationError as error:
            messages.error(request, "Nothing was applied: " + " ".join(error.messages))
            return redirect(next_url)
        verb = "Approved" if form.cleaned_data["decision"] == Decision.APPROVED else "Rejected"
        messages.success(
            request, f"{verb} {len(tokens)} port{'s' if len(tokens) != 1 else ''} ({len(outcome.rules)} rule(s))."
        )
        if outcome.overridden:
            listed = ", ".join(f"{s.host.address} {s.port}/{s.protocol}" for s in outcome.overridden[:5])
            messages.warning(request, f"A more specific rule still governs {listed}: edit or remove it to change them.")
        return redirect(next_url)


class HostDetailView(RoleRequiredMixin, DetailView):
    slug_field = slug_url_kwarg = "public_id"
    template_name = "inventory/host_detail.html"

    def get_queryset(self):
        return Host.objects.select_related("zone", "seen_ports", "owner_rule").prefetch_related("tags")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        services = list(
            self.object.services.select_related("policy_rule__zone", "policy_rule__tag", "policy_rule__host")
        )
        for service in services:
            service.host = self.object  # for seen_at and the port links, without a query each
        context["open_services"] = [service for service in services if service.state != PortState.CLOSED]
        context["closed_services"] = [service for service in services if service.state == PortState.CLOSED]
        for service in services:
            service.review_token = review.token_for(service)
        context["review_form"] = ReviewForm()
        # The timeline: what scans recorded for this host, and what reviewers decided on its ports.
        context["changes"] = self.object.changes.select_related("run", "host")[:100]
        context["decisions"] = AuditEntry.objects.filter(
            object_type="inventory.service", object_id__in=[str(service.pk) for service in services]
        )[:100]
        context["ports_by_id"] = {str(service.pk): service for service in services}
        context["runs"] = ScanRun.objects.filter(pk__in=self.object.changes.values("run_id")).select_related("target")[
            :20
        ]
        return context


class HostUpdateView(RoleRequiredMixin, UpdateView):
    """Zone, owner and tags by hand (reviewers: they decide what a host is).

    Audited by hand (not AuditedFormMixin): the tags live in another table.
    """

    required_role = Role.REVIEWER
    model = Host
    form_class = HostForm
    slug_field = slug_url_kwarg = "public_id"
    template_name = "inventory/host_form.html"

    def form_valid(self, form):
        with transaction.atomic():
            old = audit.locked(form.instance)  # as it is stored (a host deleted meanwhile: 404)
            old_tags = sorted(HostTag.objects.filter(host=old).values_list("tag__name", flat=True))
            host = form.save(commit=False)
            if host.owner != old.owner:
                host.owner_rule = None  # a person's choice now: rules leave it alone
            host.save()
            wanted = tags_named(form.cleaned_data["tag_names"])
            HostTag.objects.filter(host=host, rule__isnull=True).exclude(tag__in=wanted).delete()
            for tag in wanted:
                # A tag a rule gave becomes the person's (removing the rule keeps it).
                HostTag.objects.update_or_create(host=host, tag=tag, defaults={"rule": None})
            new_tags = sorted(HostTag.objects.filter(host=host).values_list("tag__name", flat=True))
            before = {"name": old.name, "zone": old.zone.name, "owner": old.owner, "tags": old_tags}
            after = {"name": host.name, "zone": host.zone.name, "owner": host.owner, "tags": new_tags}
            if before != after:
                audit.record(self.request.user, "host.update", host, before=before, after=after)
                policy.evaluate_hosts(Host.objects.filter(pk=host.pk))
        messages.success(self.request, f"Host {host.address} saved.")
        return redirect(host)


class PortDetailView(RoleRequiredMixin, DetailView):
    """One port of one host: the rules that apply, its history, every decision taken on it."""

    template_name = "inventory/port_detail.html"
    context_object_name = "service"

    def get_object(self, queryset=None):
        return get_object_or_404(
            Service.objects.select_related("host__zone", "policy_rule__created_by"),
            host__public_id=self.kwargs["public_id"],
            protocol=self.kwargs["protocol"],
            port=self.kwargs["port"],
        )

    def get(self, request, *args, **kwargs):
        try:
            return super().get(request, *args, **kwargs)
        except Http404:
            return self.not_in_inventory(request, **kwargs)

    def not_in_inventory(self, request, public_id, protocol, port):
        """A port only other vantage points saw open (reach.PortView): where it is seen from, and its history."""
        host = get_object_or_404(Host.objects.select_related("zone"), public_id=public_id)
        changes = Change.objects.filter(host=host, protocol=protocol, port=port).select_related("run", "host")[:200]
        if not changes:
            raise Http404("No such port.")
        context = {"host": host, "protocol": protocol, "port": port, "changes": changes}
        return render(request, "reach/port_elsewhere.html", context)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        service = self.object
        context["host"] = service.host
        context["rules"] = policy.governing(service)
        context["changes"] = Change.objects.filter(
            host=service.host, protocol=service.protocol, port=service.port
        ).select_related("run", "host")[:200]
        context["decisions"] = AuditEntry.objects.filter(object_type="inventory.service", object_id=str(service.pk))
        context["token"] = review.token_for(service)
        context["review_form"] = form = ReviewForm()
        # An alert's link (?decide=1, alerts.messages): the page opens on the decision, its
        # first field focused. Nothing is decided by following it: GET never writes.
        context["deciding"] = self.request.GET.get("decide") == "1"
        if context["deciding"]:
            form.fields["decision"].widget.attrs["autofocus"] = True
        return context


class ZoneListView(RoleRequiredMixin, ListView):
    template_name = "inventory/zone_list.html"

    def get_queryset(self):
        # Hosts per zone from the kept counts (tallies): counting a million
        # hosts here took two seconds.
        return Zone.objects.annotate(target_count=Count("targets"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        hosts = read.read([Figure.HOSTS])[Figure.HOSTS]
        for zone in context["object_list"]:
            zone.host_count = hosts.get(str(zone.pk), 0)
        return context


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


class AuditListView(paging.KeysetPaginationMixin, RoleRequiredMixin, ListView):
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
        before = None if form.instance._state.adding else RiskRule.objects.get(pk=form.instance.pk)
        with transaction.atomic():
            response = super().form_valid(form)
            # Ports the rule matched before or matches now are re-rated.
            policy.risk_changed([rule for rule in (before, self.object) if rule is not None])
        messages.success(self.request, f"Risk rule “{form.instance.label}” saved.")
        return response


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
            rule = audit.record_delete(request.user, "risk.delete", rule)
            rule.delete()
            policy.risk_changed([rule])
        messages.success(request, f"Risk rule “{rule.label}” removed.")
        return redirect("risk-list")
