"""Alerts when a vantage point's workers fall silent, and when they are back.

A silent vantage point scans nothing: its view goes stale (never "closed",
reach.liveness), and nobody notices unless told. beat runs ``watch`` every
minute on the delivery queue; it compares each vantage point's
liveness with what it saw last (``VantageWatch``) and, on a change, writes one
notification per channel whose enabled rules select it (``WorkerEvent``
kinds; a rule that names vantage points or a zone must name this one or its
zone; one that asks about ports, tags or networks selects no workers event).
The first look at a vantage point only records it: a new installation whose
zones have no workers yet is not an alert. A maintenance window over
everything, or over the vantage point's zone, records the notification as
muted, as for changes.

Written by a conditional UPDATE of the watch row and a dedupe key per event:
two watches at once alert once.
"""

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alerts import outbox
from alerts.choices import MuteScope, NotificationKind, NotificationStatus, SuppressReason, WorkerEvent
from alerts.models import AlertRule, Channel, Mute, Notification, VantageWatch
from inventory.choices import NO_RISK
from reach.liveness import Board, Liveness
from reach.models import VantagePoint

logger = logging.getLogger(__name__)


def watch(now: datetime | None = None) -> int:
    """Look at every vantage point once; return how many events were alerted."""
    now = now or timezone.now()
    board = Board.read()
    seen = {row.vantage_id: row for row in VantageWatch.objects.all()}
    events = 0
    for vantage in VantagePoint.objects.select_related("home_of"):
        liveness = board.of(vantage)
        row = seen.get(vantage.pk)
        if row is None:
            VantageWatch.objects.get_or_create(vantage=vantage, defaults={"listening": liveness.listening})
            continue
        if row.listening == liveness.listening:
            continue
        with transaction.atomic():
            # Claimed: of two watches at once, one moves the row and alerts.
            if VantageWatch.objects.filter(pk=row.pk, listening=row.listening).update(
                listening=liveness.listening, changed_at=now
            ):
                events += 1
                _alert(vantage, liveness, now)
    return events


def _alert(vantage: VantagePoint, liveness: Liveness, now: datetime) -> None:
    kind = WorkerEvent.BACK if liveness.listening else WorkerEvent.SILENT
    since = liveness.last_heard if kind == WorkerEvent.SILENT else now
    event = {
        "kind": kind.value,
        "vantage": vantage.name,
        "zone": vantage.home_of.name if vantage.home_of_id else None,
        "since": since.isoformat() if since else None,
        "workers": liveness.worker_names,
        "detail": liveness.describe(),
    }
    if kind == WorkerEvent.SILENT:
        logger.warning("vantage point %s: %s (%s)", vantage.name, kind.label, liveness.describe())
    else:
        logger.info("vantage point %s: %s (%s)", vantage.name, kind.label, ", ".join(liveness.worker_names))
    mute = _muting(vantage, now)
    to_send = []
    for channel in Channel.objects.filter(enabled=True):
        if not any(selects(rule, kind, vantage) for rule in channel.rules.filter(enabled=True)):
            continue
        fields = {"channel": channel, "kind": NotificationKind.WORKERS, "event": event, "created_at": now}
        fields["next_attempt_at"] = now
        if mute is not None:
            fields.update(status=NotificationStatus.SUPPRESSED, suppressed_reason=SuppressReason.MUTED, mute=mute)
        key = f"workers-{vantage.pk}-{kind.value}-{now.isoformat()}-{channel.pk}"
        notification, created = Notification.objects.get_or_create(dedupe_key=key[:120], defaults=fields)
        if created and mute is None:
            to_send.append(notification.pk)
    outbox.deliver_on_commit(to_send)


def selects(rule: AlertRule, kind: WorkerEvent, vantage: VantagePoint) -> bool:
    """Whether ``rule`` asks for this workers event (see the module's docstring)."""
    if rule.kinds and kind.value not in rule.kinds:
        return False
    if rule.policy_statuses or rule.min_risk != NO_RISK:
        return False
    if rule.tag_id or rule.cidr or rule.bind_scopes:
        return False
    if rule.zone_id and rule.zone_id != vantage.home_of_id:
        return False
    chosen = list(rule.vantage_points.all())
    if chosen and vantage not in chosen:
        return False
    return not (rule.home_only and vantage.home_of_id is None)


def _muting(vantage: VantagePoint, now: datetime) -> Mute | None:
    scope = Q(scope=MuteScope.GLOBAL)
    if vantage.home_of_id:
        scope |= Q(scope=MuteScope.ZONE, zone_id=vantage.home_of_id)
    return Mute.objects.filter(scope, starts_at__lte=now, ends_at__gt=now).order_by("-ends_at").first()
