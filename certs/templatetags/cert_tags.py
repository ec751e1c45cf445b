"""The port page's certificate: ``{% load cert_tags %}``, ``{% port_certificates service %}``.

Subjects, names and issuers come from the scanned host: the template escapes
them like every other text from a host.
"""

from django import template
from django.utils import timezone

from certs.models import Sighting

register = template.Library()

# A port's history shows this many certificates at most (newest first).
HISTORY_MAX = 20


@register.inclusion_tag("certs/includes/port_certificates.html")
def port_certificates(service):
    sightings = list(
        Sighting.objects.filter(service=service)
        .select_related("certificate")
        .order_by("-last_seen", "-id")[:HISTORY_MAX]
    )
    current = next((sighting for sighting in sightings if sighting.current), None)
    return {
        "current": current,
        "certificate": current.certificate if current else None,
        "findings": current.certificate.findings(timezone.now()) if current else [],
        "history": sightings,
    }
