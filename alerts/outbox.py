"""The outbox: notifications written in the same transaction as the changes.

``changes_recorded`` is sent by the ingest inside its transaction, after the
policy step (so each port's status and risk are current). For each enabled
channel, the changes that its enabled rules select are split three ways:

- muted (an active mute covers the host): a SUPPRESSED notification, shown, never sent;
- flapping (the port toggles again and again): SUPPRESSED too, the alert is damped;
- the rest: a PENDING notification, or items of the channel's open digest.

All of it is set-based (INSERT ... SELECT), so a scan that opens a hundred
thousand ports costs a few statements, not a row per change. If the ingest
rolls back, so does the outbox: nothing is sent for changes that never were.
After commit the dispatcher is asked to deliver at once; if the broker is
down at that moment, the periodic dispatch (``alerts.tasks.dispatch``) finds
the rows anyway.
"""

import logging
from datetime import datetime, timedelta

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.dispatch import receiver
from django.utils import timezone

from alerts.choices import (
    DeliveryMode,
    MuteScope,
    NotificationKind,
    NotificationStatus,
    SuppressReason,
)
from alerts.models import AlertRule, Channel, Mute, Notification, NotificationItem
from inventory.choices import NO_RISK
from inventory.models import HostTag, Service
from scans.choices import HOST_CHANGE_KINDS, LISTENER_KINDS, ChangeKind
from scans.signals import changes_recorded

logger = logging.getLogger(__name__)


@receiver(changes_recorded, dispatch_uid="alerts.outbox")
def on_changes_recorded(sender, run, changes: QuerySet, key: str = "", **kwargs) -> None:
    """A scan's changes are keyed by chunk (or run); changes a rule made (no run) bring their own key."""
    chunk_id = changes.values_list("chunk_id", flat=True).first()
    if not key:
        key = f"chunk-{chunk_id}" if chunk_id else f"run-{run.pk}"
    write(changes, key=key, chunk_id=chunk_id)


def write(changes: QuerySet, *, key: str, chunk_id: int | None = None, now: datetime | None = None) -> list[int]:
    """Write the notifications ``changes`` call for; return the ids of those to send now."""
    now = now or timezone.now()
    channels = (
        Channel.objects.filter(enabled=True, rules__enabled=True)
        .distinct()
        .prefetch_related("rules__zone", "rules__tag", "rules__vantage_points")
    )
    channels = list(channels)
    if not channels:
        return []
    mutes = list(Mute.objects.filter(starts_at__lte=now, ends_at__gt=now))
    muted = mute_condition(mutes)
    to_send: list[int] = []
    for channel in channels:
        rules = [rule for rule in channel.rules.all() if rule.enabled]
        selected = changes.filter(_any(rule_condition(rule) for rule in rules))
        if muted is not None:
            _suppress(
                channel,
                selected.filter(muted),
                f"{key}-ch{channel.pk}-muted",
                SuppressReason.MUTED,
                chunk_id,
                mute=mutes[0] if len(mutes) == 1 else None,
            )
            selected = selected.exclude(muted)
        _suppress(
            channel, selected.filter(flapping=True), f"{key}-ch{channel.pk}-flapping", SuppressReason.FLAPPING, chunk_id
        )
        selected = selected.filter(flapping=False)
        if channel.mode == DeliveryMode.DIGEST:
            _add_to_digest(channel, selected, now, key)
        else:
            notification = _create(channel, selected, f"{key}-ch{channel.pk}", chunk_id=chunk_id, now=now)
            if notification is not None:
                to_send.append(notification.pk)
    if to_send:
        deliver_on_commit(to_send)
    return to_send


def _any(conditions) -> Q:
    """OR of ``conditions``; an empty Q (no condition) selects everything."""
    conditions = list(conditions)
    if not conditions:
        return Q(pk__in=[])
    if any(not condition for condition in conditions):
        # Q() | Q(x) would drop the empty side: Django treats an empty Q as "nothing to add".
        return Q()
    combined = conditions[0]
    for condition in conditions[1:]:
        combined |= condition
    return combined


def rule_condition(rule: AlertRule) -> Q:
    """The changes ``rule`` selects, as a condition on Change rows."""
    condition = Q()
    if rule.kinds:
        condition &= Q(kind__in=rule.kinds)
    service = Service.objects.filter(host_id=OuterRef("host_id"), protocol=OuterRef("protocol"), port=OuterRef("port"))
    if rule.policy_statuses:
        # Policy belongs to ports: host-level changes have none.
        condition &= Q(Exists(service.filter(policy_status__in=rule.policy_statuses)))
    if rule.min_risk > NO_RISK:
        condition &= (Q(port__isnull=False) & Q(Exists(service.filter(risk__gte=rule.min_risk)))) | Q(
            kind__in=HOST_CHANGE_KINDS, host__risk__gte=rule.min_risk
        )
    condition &= _scope_condition(zone=rule.zone_id, tag=rule.tag_id, cidr=rule.cidr)
    condition &= vantage_condition(rule)
    if rule.bind_scopes:
        # Where the socket listens: after the change, or before a removal.
        condition &= (
            ~Q(kind__in=LISTENER_KINDS)
            | Q(kind__in=[ChangeKind.LISTENER_ADDED, ChangeKind.LISTENER_REBOUND], after__scope__in=rule.bind_scopes)
            | Q(kind=ChangeKind.LISTENER_REMOVED, before__scope__in=rule.bind_scopes)
        )
    return condition


def vantage_condition(rule: AlertRule) -> Q:
    """Changes seen from where ``rule`` asks: its vantage points, or the zone's home; anywhere if it asks neither.

    A change recorded before vantage points existed (none) was the home's.
    """
    chosen = [vantage.pk for vantage in rule.vantage_points.all()]
    if not chosen and not rule.home_only:
        return Q()
    condition = Q(vantage_id__in=chosen) if chosen else Q(pk__in=[])
    if rule.home_only:
        condition |= Q(vantage__isnull=True) | Q(vantage__home_of_id=F("host__zone_id"))
    return condition


def _scope_condition(*, zone=None, tag=None, cidr="", host=None, of: str = "host__") -> Q:
    """Rows whose host is in the scope; ``of`` is the path from the rows to their host
    ("host__" for changes, "" for hosts themselves: the host page's mutes, alerts.mutes)."""
    host_id = "host_id" if of else "pk"
    condition = Q()
    if zone:
        condition &= Q(**{f"{of}zone_id": zone})
    if tag:
        condition &= Q(Exists(HostTag.objects.filter(host_id=OuterRef(host_id), tag_id=tag)))
    if cidr:
        condition &= Q(**{f"{of}address__in_cidr": cidr})
    if host:
        condition &= Q(**{host_id: host})
    return condition


def mute_condition(mutes: list[Mute], *, of: str = "host__") -> Q | None:
    """Changes (or, with ``of=""``, hosts) any of ``mutes`` covers, or None when none is active."""
    if not mutes:
        return None
    return _any(
        Q()
        if mute.scope == MuteScope.GLOBAL
        else _scope_condition(
            zone=mute.zone_id if mute.scope == MuteScope.ZONE else None,
            tag=mute.tag_id if mute.scope == MuteScope.TAG else None,
            cidr=mute.cidr if mute.scope == MuteScope.CIDR else "",
            host=mute.host_id if mute.scope == MuteScope.HOST else None,
            of=of,
        )
        for mute in mutes
    )


def _insert_items(notification: Notification, changes: QuerySet) -> int:
    """INSERT ... SELECT the changes into the notification; return how many were new."""
    try:
        sql, params = changes.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:  # a condition Django knows matches nothing
        return 0
    table = NotificationItem._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (notification_id, change_id) SELECT %s, sel.* FROM ({sql}) sel "  # noqa: S608 - our own compiled SQL
            # WHERE true: SQLite would otherwise read ON CONFLICT as a join's ON.
            "WHERE true ON CONFLICT DO NOTHING",
            (notification.pk, *params),
        )
        return cursor.rowcount


def _create(channel, changes, dedupe_key, *, chunk_id, now, **fields) -> Notification | None:
    """A notification holding ``changes``, or None when they are none."""
    # One read for the common case (nothing selected, muted or flapping) instead of a row written and removed.
    if not changes.exists():
        return None
    notification, _ = Notification.objects.get_or_create(
        dedupe_key=dedupe_key,
        defaults={"channel": channel, "chunk_id": chunk_id, "created_at": now, "next_attempt_at": now, **fields},
    )
    _insert_items(notification, changes)
    return notification


def _suppress(channel, changes, dedupe_key, reason, chunk_id, *, mute=None) -> None:
    _create(
        channel,
        changes,
        dedupe_key,
        chunk_id=chunk_id,
        now=timezone.now(),
        status=NotificationStatus.SUPPRESSED,
        suppressed_reason=reason,
        mute=mute,
    )


def digest_window(channel: Channel, now: datetime) -> tuple[datetime, datetime]:
    """The window ``now`` falls in: windows of digest_minutes, aligned on the epoch."""
    length = timedelta(minutes=max(1, channel.digest_minutes))
    epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo)
    start = epoch + ((now - epoch) // length) * length
    return start, start + length


def _add_to_digest(channel, changes, now, key) -> None:
    """Append to the channel's open digest; it is sent when its window ends.

    The row is locked while items are added. If the dispatcher has already
    claimed this window's digest, the changes start a follow-up digest, so
    none is added to a message that is already on its way.
    """
    if not changes.exists():
        return
    start, end = digest_window(channel, now)
    dedupe_key = f"digest-ch{channel.pk}-{start:%Y%m%dT%H%M}"
    Notification.objects.get_or_create(
        dedupe_key=dedupe_key,
        defaults={"channel": channel, "kind": NotificationKind.DIGEST, "created_at": now, "next_attempt_at": end},
    )
    digest = Notification.objects.select_for_update().get(dedupe_key=dedupe_key)
    if digest.status != NotificationStatus.PENDING or digest.attempts:
        digest, _ = Notification.objects.get_or_create(
            dedupe_key=f"{dedupe_key}-{key}",
            defaults={"channel": channel, "kind": NotificationKind.DIGEST, "created_at": now, "next_attempt_at": now},
        )
    _insert_items(digest, changes)


def deliver_on_commit(notification_ids: list[int]) -> None:
    """Ask the delivery queue to send these once the transaction commits.

    A broker that is down must not fail the scan that produced the changes:
    the error is logged, and the periodic dispatch delivers the rows later.
    """
    from alerts.tasks import deliver  # noqa: PLC0415 - tasks import the delivery code

    def send():
        try:
            for notification_id in notification_ids:
                deliver.apply_async(args=[notification_id], retry=False)
        except Exception as error:  # any broker failure: the rows are safe in the outbox
            logger.warning("could not reach the broker (%s); the dispatcher will send the notifications", error)

    transaction.on_commit(send)
