"""Filters of the list pages (django-filter: declared once, validated like forms)."""

import django_filters
from django import forms
from django.db.models import Q

from inventory.models import AuditEntry


class AuditFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="iexact", label="Who")
    action = django_filters.ChoiceFilter(choices=(), label="Action")
    object_type = django_filters.ChoiceFilter(choices=(), label="Object type")
    q = django_filters.CharFilter(method="search", label="Object or summary contains")
    since = django_filters.DateFilter(
        field_name="at", lookup_expr="date__gte", label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = django_filters.DateFilter(
        field_name="at", lookup_expr="date__lte", label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    class Meta:
        model = AuditEntry
        fields = ["actor", "action", "object_type", "q", "since", "until"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Offer the values the log holds (a handful of distinct strings).
        for name in ("action", "object_type"):
            values = AuditEntry.objects.order_by(name).values_list(name, flat=True).distinct()
            self.filters[name].extra["choices"] = [(value, value) for value in values if value]

    def search(self, queryset, name, value):
        return queryset.filter(Q(object_repr__icontains=value) | Q(summary__icontains=value))
