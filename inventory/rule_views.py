"""Pages of port rules (the policy) and assignment rules (tags and owners by network)."""

import copy

from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse_lazy
from django.utils import timezone
from django.views import View
from django.views.generic import CreateView, DetailView, ListView, UpdateView

from inventory import assignment, audit, paging, policy
from inventory.choices import Decision, RuleScope
from inventory.forms import AssignmentRuleForm, PortRuleForm, tags_named
from inventory.models import AssignmentRule, AuditEntry, PortRule
from portwatch.roles import Role, RoleRequiredMixin


class RuleListView(paging.KeysetPaginationMixin, RoleRequiredMixin, ListView):
    paginate_by = 100
    template_name = "inventory/rule_list.html"

    def get_queryset(self):
        rules = PortRule.objects.select_related("zone", "tag", "host__zone", "created_by")
        decision = self.request.GET.get("decision")
        if decision in Decision.values:
            rules = rules.filter(decision=decision)
        scope = self.request.GET.get("scope")
        if scope in RuleScope.values:
            rules = rules.filter(scope=scope)
        if self.request.GET.get("expired") == "yes":
            rules = rules.filter(expires_at__lte=timezone.now())
        return rules

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(decisions=Decision.choices, scopes=RuleScope.choices, now=timezone.now())
        return context


class RuleDetailView(RoleRequiredMixin, DetailView):
    slug_field = slug_url_kwarg = "public_id"
    template_name = "inventory/rule_detail.html"
    context_object_name = "rule"

    def get_queryset(self):
        return PortRule.objects.select_related("zone", "tag", "host__zone", "created_by")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        governed = self.object.services.select_related("host__zone").order_by("host_id", "protocol", "port")
        context["governed"] = governed[:100]
        context["governed_count"] = governed.count()
        context["history"] = AuditEntry.objects.filter(object_type="inventory.portrule", object_id=str(self.object.pk))
        return context


class RuleCreateView(RoleRequiredMixin, CreateView):
    """Reviewers write rules by hand too (a port range, a network...); audited like decisions."""

    required_role = Role.REVIEWER
    model = PortRule
    form_class = PortRuleForm
    template_name = "inventory/rule_form.html"

    def get_initial(self):
        initial = super().get_initial()
        for name in ("port_start", "protocol", "scope", "decision"):
            if name in self.request.GET:
                initial[name] = self.request.GET[name]
        return initial

    def form_valid(self, form):
        creating = form.instance._state.adding
        before = None if creating else PortRule.objects.get(pk=form.instance.pk)
        with transaction.atomic():
            if creating:
                form.instance.created_by = self.request.user
            self.object = form.save()
            after = audit.snapshot(self.object)
            old = audit.snapshot(before) if before else None
            if old != after:
                action = "rule.create" if creating else "rule.update"
                audit.record(self.request.user, action, self.object, before=old, after=after)
            policy.rule_changed(before, self.object)
        messages.success(self.request, f"Rule saved: {self.object}.")
        return redirect(self.object)


class RuleUpdateView(RuleCreateView, UpdateView):
    slug_field = slug_url_kwarg = "public_id"


class RuleDeleteView(RoleRequiredMixin, View):
    required_role = Role.REVIEWER
    http_method_names = ["post"]

    def post(self, request, public_id):
        rule = get_object_or_404(PortRule, public_id=public_id)
        with transaction.atomic():
            rule = audit.record_delete(request.user, "rule.delete", rule)
            gone = copy.copy(rule)
            rule.delete()
            gone.pk = None  # its ports pointed at it: SET NULL made them pending-free; re-evaluate its reach
            policy.rule_changed(gone)
        messages.success(request, f"Rule removed: {gone}. Its ports fall to the next rule, or to unreviewed.")
        return redirect("rule-list")


class AssignmentListView(RoleRequiredMixin, ListView):
    template_name = "inventory/assignment_list.html"

    def get_queryset(self):
        return AssignmentRule.objects.select_related("zone").prefetch_related("tags")


class AssignmentCreateView(RoleRequiredMixin, CreateView):
    required_role = Role.ADMIN
    model = AssignmentRule
    form_class = AssignmentRuleForm
    template_name = "inventory/assignment_form.html"
    success_url = reverse_lazy("assignment-list")

    def form_valid(self, form):
        creating = form.instance._state.adding
        before = None if creating else AssignmentRule.objects.get(pk=form.instance.pk)
        old = audit.snapshot(before) if before else None
        with transaction.atomic():
            self.object = form.save()
            self.object.tags.set(tags_named(form.cleaned_data["tag_names"]))
            after = audit.snapshot(self.object)
            if old != after:
                action = "assignment.create" if creating else "assignment.update"
                audit.record(self.request.user, action, self.object, before=old, after=after)
            assignment.rule_changed(before, self.object)
        messages.success(self.request, f"Assignment rule for {self.object.cidr} saved and applied.")
        return redirect(self.success_url)


class AssignmentUpdateView(AssignmentCreateView, UpdateView):
    pass


class AssignmentDeleteView(RoleRequiredMixin, View):
    required_role = Role.ADMIN
    http_method_names = ["post"]

    def post(self, request, pk):
        rule = get_object_or_404(AssignmentRule, pk=pk)
        with transaction.atomic():
            rule = audit.record_delete(request.user, "assignment.delete", rule)
            gone = copy.copy(rule)
            assignment.take_back(rule)
            rule.delete()
            assignment.rule_changed(gone, None)
        messages.success(
            request, f"Assignment rule for {gone.cidr} removed; the tags and owners it gave were taken back."
        )
        return redirect("assignment-list")
