"""A certificate as a row of the CSV/JSON exports and the command (inventory.exports escapes formulas in CSV)."""

from django.utils import timezone

from certs.choices import Finding


def certificate_row(sighting, now=None) -> dict:
    certificate, service = sighting.certificate, sighting.service
    now = now or timezone.now()
    return {
        "address": service.host.address,
        "zone": service.host.zone.name,
        "protocol": service.protocol,
        "port": service.port,
        "subject": certificate.subject,
        "sans": " ".join(certificate.sans),
        "issuer": certificate.issuer,
        "not_before": certificate.not_before.isoformat(),
        "not_after": certificate.not_after.isoformat(),
        "days_left": (certificate.not_after - now).days,
        "key": f"{certificate.key_type} {certificate.key_bits}",
        "signature_algorithm": certificate.signature_algorithm,
        "self_signed": certificate.self_signed,
        "findings": " ".join(Finding(found).value for found in certificate.findings(now)),
        "sha256": certificate.sha256,
        "serial": certificate.serial,
        "first_seen": sighting.first_seen.isoformat(),
        "last_seen": sighting.last_seen.isoformat(),
    }
