"""Pages of segmentation rules and their violations: admins write rules, everyone with a role reads."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views import View
from django.views.generic import CreateView, DetailView, UpdateView

from inventory import paging
from inventory.models import AuditEntry
from inventory.views import FilteredListView
from portwatch.roles import Role, RoleRequiredMixin
from reach import segmentation, segmentation_writes
from reach.models import SegmentationRule, SegmentationViolation
from reach.segmentation_forms import SegmentationRuleFilter, SegmentationRuleForm, SegmentationViolationFilter

# The rule page lists this many of its violations (the violations page has them all).
RULE_PAGE_VIOLATIONS = 50


def rules_with_scope():
    """The rules shown (not those being removed), with their scope, and whether a worker is still judging them."""
    rules = segmentation_writes.shown_rules().select_related("zone", "tag", "host__zone", "created_by")
    return segmentation_writes.with_judging(rules.prefetch_related("vantage_points"))


def violations_shown():
    """Violations with what their rows show: host, vantage point, rule."""
    return SegmentationViolation.objects.select_related("host__zone", "vantage", "rule").order_by("-id")


def violation_row(violation) -> dict:
    """A violation in an export (host names are the scanned host's: exports escape them)."""
    return {
        "since": violation.since,
        "address": violation.host.address,
        "zone": violation.host.zone.name,
        "hostnames": " ".join(violation.host.hostnames),
        "protocol": violation.protocol,
        "port": violation.port,
        "vantage": violation.vantage.name,
        "rule": str(violation.rule.public_id),
        "mode": violation.rule.mode,
    }


class SegmentationRuleListView(RoleRequiredMixin, View):
    """The rules, most specific first, each with its current violations."""

    paginate_by = 50
    template_name = "reach/segmentation/rule_list.html"

    def get(self, request):
        rules = rules_with_scope().annotate(violation_count=segmentation.ViolationCount())
        filterset = SegmentationRuleFilter(request.GET, queryset=rules, request=request)
        rules = filterset.qs if filterset.is_valid() else rules.none()
        page = paging.page_for(request, rules, self.paginate_by)
        context = {"filter": filterset, "page": page, "now": timezone.now(), "cap": segmentation.COUNT_CAP}
        return render(request, self.template_name, context)


class SegmentationRuleDetailView(RoleRequiredMixin, DetailView):
    slug_field = slug_url_kwarg = "public_id"
    template_name = "reach/segmentation/rule_detail.html"
    context_object_name = "rule"

    def get_queryset(self):
        return rules_with_scope()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        violations = violations_shown().filter(rule=self.object)
        context["violations"] = violations[:RULE_PAGE_VIOLATIONS]
        context["violation_count"] = violations[: segmentation.COUNT_CAP + 1].count()
        context["cap"] = segmentation.COUNT_CAP
        context["history"] = AuditEntry.objects.filter(
            object_type=SegmentationRule._meta.label_lower, object_id=str(self.object.pk)
        )
        return context


class SegmentationRuleCreateView(RoleRequiredMixin, CreateView):
    required_role = Role.ADMIN
    model = SegmentationRule
    form_class = SegmentationRuleForm
    template_name = "reach/segmentation/rule_form.html"

    def form_valid(self, form):
        self.object = segmentation_writes.save_rule(self.request.user, form)
        messages.success(
            self.request,
            f"Segmentation rule saved: {self.object}. A worker is working out its violations; "
            "this page shows them when it is done.",
        )
        return redirect(self.object)


class SegmentationRuleUpdateView(SegmentationRuleCreateView, UpdateView):
    slug_field = slug_url_kwarg = "public_id"

    def get_queryset(self):
        return rules_with_scope()


class SegmentationRuleDeleteView(RoleRequiredMixin, View):
    required_role = Role.ADMIN
    http_method_names = ["post"]

    def post(self, request, public_id):
        rule = get_object_or_404(rules_with_scope(), public_id=public_id)
        label = str(rule)
        segmentation_writes.remove_rule(request.user, rule)
        messages.success(
            request,
            f"Segmentation rule removed: {label}. It governs nothing from now; a worker lets its violations "
            "fall to the next rule or end, then deletes it.",
        )
        return redirect("segmentation-rule-list")


class SegmentationViolationListView(FilteredListView):
    """Every current violation, newest first: which host's port, reached from where, against which rule."""

    filterset_class = SegmentationViolationFilter
    template_name = "reach/segmentation/violation_list.html"
    export_name = "segmentation-violations"
    export_row = staticmethod(violation_row)

    def base_queryset(self):
        return violations_shown()
