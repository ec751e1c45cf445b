"""``/api/certificates/``: every open port's current certificate, filtered like the Certificates page.

Read-only, for viewers and up. Subjects, names and issuers come from the
scanned hosts: treat them as untrusted text.
"""

import django_filters
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, viewsets

from certs.choices import Finding
from certs.filters import CertificateFilter
from certs.models import Certificate, Sighting
from certs.views import current_sightings
from inventory.api import HostRefSerializer, named_filter
from inventory.constants import PORT_MAX, PORT_MIN
from portwatch.api.base import RoleMixin


class CertificateFactsSerializer(serializers.ModelSerializer):
    class Meta:
        model = Certificate
        fields = [
            "sha256",
            "subject",
            "sans",
            "issuer",
            "serial",
            "not_before",
            "not_after",
            "key_type",
            "key_bits",
            "signature_algorithm",
            "self_signed",
            "weak_key",
        ]


class SightingSerializer(serializers.ModelSerializer):
    """A port's current certificate: where, since when, what it is, and what is wrong with it."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    host = HostRefSerializer(source="service.host", read_only=True)
    protocol = serializers.CharField(source="service.protocol", read_only=True)
    port = serializers.IntegerField(source="service.port", read_only=True)
    certificate = CertificateFactsSerializer(read_only=True)
    findings = serializers.SerializerMethodField()

    class Meta:
        model = Sighting
        fields = ["id", "host", "protocol", "port", "first_seen", "last_seen", "certificate", "findings"]

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=Finding.choices)))
    def get_findings(self, sighting) -> list[str]:
        return [str(found) for found in sighting.certificate.findings(timezone.now())]


class ApiCertificateFilter(CertificateFilter):
    zone = named_filter(CertificateFilter.base_filters["zone"])
    host = django_filters.UUIDFilter(field_name="service__host__public_id", label="Host id")
    port = django_filters.NumberFilter(field_name="service__port", min_value=PORT_MIN, max_value=PORT_MAX, label="Port")

    class Meta(CertificateFilter.Meta):
        fields = [*CertificateFilter.Meta.fields, "host", "port"]


class CertificateViewSet(RoleMixin, viewsets.ReadOnlyModelViewSet):
    """Open ports' current certificates, expiring soonest first; ``finding``, ``zone``, ``q`` (subject or
    names), ``host`` and ``port`` narrow them."""

    serializer_class = SightingSerializer
    filterset_class = ApiCertificateFilter
    lookup_field = "public_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return current_sightings()


def register(router) -> None:
    router.register("certificates", CertificateViewSet, basename="certificate")
