"""The changes feed's filters (django-filter), shared by the page and the API."""

from datetime import timedelta

import django_filters
from django import forms
from django.db.models import Exists, OuterRef
from django.utils import timezone

from inventory.choices import PolicyStatus
from inventory.filters import RISK_CHOICES, host_zone_filter, tagged_hosts
from inventory.models import Service, Tag
from portwatch.choice_filters import ModelChoiceFilter
from reach.models import VantagePoint
from scans.choices import ChangeKind
from scans.models import Change

CHANGE_WINDOWS = [("1", "last 24 hours"), ("7", "last 7 days"), ("30", "last 30 days")]


def _port_service():
    """The inventory row of a change's port: risk and policy live there."""
    return Service.objects.filter(host_id=OuterRef("host_id"), protocol=OuterRef("protocol"), port=OuterRef("port"))


class ChangeFilter(django_filters.FilterSet):
    # distinct=False: kind is the change's own column, so no row can repeat, and
    # django-filter's default SELECT DISTINCT sorted every matching change
    # (a second at 2M changes) instead of walking the newest-first index.
    kind = django_filters.MultipleChoiceFilter(
        choices=ChangeKind.choices, label="Kind", widget=forms.SelectMultiple(attrs={"size": 3}), distinct=False
    )
    zone = host_zone_filter()
    tag = ModelChoiceFilter(
        queryset=Tag.objects.all(), to_field_name="name", method="filter_tag", empty_label="all tags", label="Tag"
    )
    # Where it was seen from: the zone's home (the inventory's changes) or another vantage point (exposures).
    vantage = ModelChoiceFilter(
        queryset=VantagePoint.objects.all(), to_field_name="name", empty_label="everywhere", label="Seen from"
    )
    risk = django_filters.ChoiceFilter(choices=RISK_CHOICES, method="by_port_row", label="Risk", empty_label="any")
    policy = django_filters.ChoiceFilter(
        choices=PolicyStatus.choices, method="by_port_row", label="Port policy", empty_label="any"
    )
    within = django_filters.ChoiceFilter(
        choices=CHANGE_WINDOWS, method="filter_within", label="When", empty_label="any time"
    )
    since = django_filters.IsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        label="From",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="lt",
        label="Until",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    flapping = django_filters.BooleanFilter(
        label="Flapping",
        widget=forms.Select(choices=[("", "either"), ("true", "flapping only"), ("false", "not flapping")]),
    )

    class Meta:
        model = Change
        fields = ["kind", "zone", "tag", "vantage", "risk", "policy", "within", "since", "until", "flapping"]

    def filter_tag(self, queryset, name, value):
        return queryset.filter(host_id__in=tagged_hosts(value))

    def by_port_row(self, queryset, name, value):
        return queryset  # risk and policy are applied together, in filter_queryset

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        # Risk and policy both ask about the port's inventory row: one lookup
        # of that row per change for both (the feed walks changes newest
        # first until a page matches, so each lookup is paid many times).
        row = {}
        if risk := self.form.cleaned_data.get("risk"):
            row["risk__gte"] = int(risk)
        if policy := self.form.cleaned_data.get("policy"):
            row["policy_status"] = policy
        if row:
            # Host-level changes have no port and so no risk or policy.
            queryset = queryset.filter(port__isnull=False).filter(Exists(_port_service().filter(**row)))
        return queryset

    def filter_within(self, queryset, name, value):
        return queryset.filter(created_at__gte=timezone.now() - timedelta(days=int(value)))
