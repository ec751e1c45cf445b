"""Expiry alerts on a schedule, not on every scan.

Beat calls ``record_expiry`` (``CERT_EXPIRY_CHECK_SECONDS``). Each open port
whose current certificate has expired, or expires within
``CERT_EXPIRY_WARN_DAYS``, gets a ``certificate_expired`` or
``certificate_expiring`` change (no run: no scan saw anything new) at most
once per ``CERT_EXPIRY_REPEAT_DAYS`` for that port and certificate, and those
changes go through the alert rules and the outbox like every other
(``changes_recorded``, in the same transaction). A sighting is claimed with a
conditional UPDATE of when it was last alerted, so two beats (or a retried
task) never record the same reminder twice.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from certs.models import Sighting
from inventory.choices import PortState
from scans.choices import ChangeKind
from scans.models import Change
from scans.signals import changes_recorded

# Sightings handled per transaction: a backlog (the first run over a large
# inventory) is worked through in bounded steps.
BATCH = 1000


def due(now: datetime):
    """Current certificates of open ports that expire within the warning and were not alerted within the interval."""
    warn_until = now + timedelta(days=settings.CERT_EXPIRY_WARN_DAYS)
    alerted_before = now - timedelta(days=settings.CERT_EXPIRY_REPEAT_DAYS)
    return Sighting.objects.filter(
        Q(expiry_alerted_at__isnull=True) | Q(expiry_alerted_at__lte=alerted_before),
        current=True,
        not_after__lte=warn_until,
        service__state=PortState.OPEN,
    )


def record_expiry(now: datetime | None = None) -> int:
    """Record the expiry changes that are due; return how many."""
    now = now or timezone.now()
    total = 0
    while True:
        candidates, recorded = _record_batch(now)
        total += recorded
        if candidates < BATCH:
            return total


def _record_batch(now: datetime) -> tuple[int, int]:
    """(sightings looked at, changes recorded) of one bounded step."""
    with transaction.atomic():
        candidates = list(due(now).order_by("not_after", "id").values_list("pk", "expiry_alerted_at")[:BATCH])
        claimed = [
            pk
            for pk, alerted_at in candidates
            # Claimed only if nobody alerted it meanwhile.
            if Sighting.objects.filter(pk=pk, expiry_alerted_at=alerted_at).update(expiry_alerted_at=now) == 1
        ]
        if not claimed:
            return len(candidates), 0
        changes = []
        for sighting in Sighting.objects.filter(pk__in=claimed).select_related("certificate", "service"):
            certificate, service = sighting.certificate, sighting.service
            expired = certificate.not_after <= now
            changes.append(
                Change(
                    host_id=service.host_id,
                    kind=ChangeKind.CERTIFICATE_EXPIRED if expired else ChangeKind.CERTIFICATE_EXPIRING,
                    protocol=service.protocol,
                    port=service.port,
                    after={**certificate.snapshot(), "days_left": (certificate.not_after - now).days},
                    created_at=now,
                )
            )
        ids = [change.pk for change in Change.objects.bulk_create(changes)]
        changes_recorded.send(
            sender=Change, run=None, changes=Change.objects.filter(pk__in=ids), key=f"certificates-{min(ids)}"
        )
        return len(candidates), len(ids)
