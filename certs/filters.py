"""Filters of the Certificates page and API (django-filter, declared once for both)."""

from datetime import timedelta

import django_filters
from django.conf import settings
from django.utils import timezone

from certs.choices import Finding
from certs.models import Sighting
from inventory.models import Zone
from portwatch.choice_filters import ModelChoiceFilter


class CertificateFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Subject or name contains")
    finding = django_filters.ChoiceFilter(
        choices=Finding.choices, method="by_finding", empty_label="any", label="Finding"
    )
    zone = ModelChoiceFilter(
        queryset=Zone.objects.all(),
        to_field_name="name",
        field_name="service__host__zone",
        empty_label="all zones",
        label="Zone",
    )

    class Meta:
        model = Sighting
        fields = ["q", "finding", "zone"]

    def search(self, queryset, name, value):
        return queryset.filter(certificate__names__icontains=value)

    def by_finding(self, queryset, name, value):
        now = timezone.now()
        if value == Finding.EXPIRED:
            return queryset.filter(not_after__lte=now)
        if value == Finding.EXPIRING:
            return queryset.filter(
                not_after__gt=now, not_after__lte=now + timedelta(days=settings.CERT_EXPIRY_WARN_DAYS)
            )
        if value == Finding.SELF_SIGNED:
            return queryset.filter(certificate__self_signed=True)
        return queryset.filter(certificate__weak_key=True)
