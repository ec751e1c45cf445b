"""The Certificates page: every open port's current certificate, expiring soonest first."""

from django.conf import settings
from django.utils import timezone

from certs import exports
from certs.filters import CertificateFilter
from certs.models import Sighting
from inventory.choices import PortState
from inventory.views import FilteredListView


def current_sightings():
    """Open ports' current certificates, in the lists' order (the index sighting_current_expiry_idx)."""
    return (
        Sighting.objects.filter(current=True, service__state=PortState.OPEN)
        .select_related("certificate", "service__host__zone")
        .order_by("not_after", "id")
    )


class CertificateListView(FilteredListView):
    filterset_class = CertificateFilter
    template_name = "certs/certificate_list.html"
    export_name = "certificates"
    export_row = staticmethod(exports.certificate_row)

    def base_queryset(self):
        return current_sightings()

    def context(self, **context):
        now = timezone.now()
        for sighting in context["page"].object_list:
            sighting.found = sighting.certificate.findings(now)
        context["warn_days"] = settings.CERT_EXPIRY_WARN_DAYS
        return context
