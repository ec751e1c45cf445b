"""Certificates behind TLS ports (DESIGN.md, "Views of a port").

A Certificate is one certificate, unique by its SHA-256 fingerprint, however
many ports serve it. A Sighting is one certificate on one port (Service):
when it was first and last seen there, and whether it is the port's current
one; a port's sightings are its certificate history. Both are written by the
scan's ingest (``certs.record``) and by beat's expiry check (which only
stamps when it last alerted); the pages, API and alerts only read them.
"""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q

from certs.choices import Finding
from inventory.models import Service


class Certificate(models.Model):
    """One X.509 certificate as a scan saw it; text fields come from the scanned host (escape them)."""

    sha256 = models.CharField(max_length=64, unique=True)
    subject = models.TextField(blank=True)
    issuer = models.TextField(blank=True)
    sans = models.JSONField(default=list, blank=True)
    serial = models.CharField(max_length=500, blank=True)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    key_type = models.CharField(max_length=16)
    key_bits = models.PositiveIntegerField(default=0)
    signature_algorithm = models.CharField(max_length=64, blank=True)
    signature_hash = models.CharField(max_length=16, blank=True)
    self_signed = models.BooleanField(default=False)
    # RSA < 2048 bits or a SHA-1/MD5 signature (certs.parsing.CertificateFacts.weak_key).
    weak_key = models.BooleanField(default=False)
    pem = models.TextField()
    # The subject and SANs, one a line: what the lists' search (?q=) reads.
    names = models.TextField(blank=True, editable=False)
    first_seen = models.DateTimeField()

    class Meta:
        ordering = ["not_after", "id"]

    def __str__(self):
        return f"{self.subject or '(no subject)'} {self.sha256[:16]}"

    def snapshot(self) -> dict:
        """What a change says of it (before/after of certificate_changed, after of expiry changes)."""
        return {"fingerprint": self.sha256, "subject": self.subject, "not_after": self.not_after.isoformat()}

    def findings(self, now: datetime) -> list[str]:
        found = []
        if self.not_after <= now:
            found.append(Finding.EXPIRED)
        elif self.not_after <= now + timedelta(days=settings.CERT_EXPIRY_WARN_DAYS):
            found.append(Finding.EXPIRING)
        if self.self_signed:
            found.append(Finding.SELF_SIGNED)
        if self.weak_key:
            found.append(Finding.WEAK_KEY)
        return found


class Sighting(models.Model):
    """A certificate on a port: its history there, and whether it is the port's current one."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="certificate_sightings")
    certificate = models.ForeignKey(Certificate, on_delete=models.PROTECT, related_name="sightings")
    current = models.BooleanField(default=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    # The certificate's, copied: the Certificates page sorts current sightings
    # by it (expiring soonest first) along one index, with no join.
    not_after = models.DateTimeField()
    # When beat last recorded certificate_expiring or certificate_expired for
    # this port and certificate (certs.expiry): at most once per repeat interval.
    expiry_alerted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["service", "certificate"], name="sighting_unique_service_certificate"),
            # A port has one current certificate.
            models.UniqueConstraint(
                fields=["service"], condition=Q(current=True), name="sighting_unique_current_per_service"
            ),
        ]
        indexes = [
            # Certificates page and API (expiring soonest first, keyset pages on
            # (not_after, id)) and beat's expiry check (not_after below a bound).
            models.Index(fields=["not_after", "id"], condition=Q(current=True), name="sighting_current_expiry_idx"),
        ]

    def __str__(self):
        return f"{self.certificate} on {self.service_id}"
