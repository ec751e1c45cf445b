"""Certificates a scan saw, recorded in the ingest's own transaction (``scans.signals``)."""

from django.dispatch import receiver

from certs import record
from scans.signals import certificates_observed


@receiver(certificates_observed, dispatch_uid="certs.record")
def record_certificates(sender, *, run, chunk, zone, now, certificates, **kwargs):
    return record.observed(run=run, chunk=chunk, zone=zone, now=now, certificates=certificates)
