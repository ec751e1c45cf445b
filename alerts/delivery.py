"""Delivery: claim a notification, send it, record the outcome.

At least once, never silently dropped:
- a notification is claimed with a conditional UPDATE (PENDING and due ->
  SENDING), so two workers never send it at once;
- success marks it SENT; a temporary error puts it back to PENDING with an
  exponential back-off (capped); a permanent error, or the last allowed
  attempt, marks it FAILED, where it stays, visible, until someone retries or
  dismisses it;
- a claim whose worker died (SENDING for longer than the lease) is given back
  by ``dispatch_due``, and the receiver sees the same idempotency key again.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from alerts import messages
from alerts.choices import NotificationKind, NotificationStatus
from alerts.models import Channel, Notification
from alerts.transports import TransportError, transport_for

logger = logging.getLogger(__name__)


def backoff(attempts: int) -> timedelta:
    """Wait before attempt ``attempts + 1``: base * 2^(attempts-1), capped."""
    seconds = settings.ALERT_RETRY_BASE_SECONDS * (2 ** max(0, attempts - 1))
    return timedelta(seconds=min(seconds, settings.ALERT_RETRY_MAX_SECONDS))


def claim(notification_id: int) -> Notification | None:
    now = timezone.now()
    claimed = Notification.objects.filter(
        pk=notification_id, status=NotificationStatus.PENDING, next_attempt_at__lte=now
    ).update(status=NotificationStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return None
    return Notification.objects.select_related("channel").get(pk=notification_id)


def deliver(notification_id: int) -> str | None:
    """Send one notification if it is due and nobody else is; return its new status."""
    notification = claim(notification_id)
    if notification is None:
        return None
    channel = notification.channel
    try:
        if not channel.enabled and notification.kind != NotificationKind.TEST:
            raise TransportError("the channel is disabled", permanent=True)
        message = messages.build(notification)
        transport_for(channel).notify(message)
    except TransportError as error:
        return _failed(notification, error.message, permanent=error.permanent)
    except Exception as error:  # a bug in a template or transport: kept visible, retried
        logger.exception("notification %s: unexpected error", notification.public_id)
        return _failed(notification, f"internal error: {type(error).__name__}: {error}", permanent=False)
    now = timezone.now()
    with transaction.atomic():
        Notification.objects.filter(pk=notification.pk, status=NotificationStatus.SENDING).update(
            status=NotificationStatus.SENT, sent_at=now, last_error="", claimed_at=None
        )
        Channel.objects.filter(pk=channel.pk).update(last_delivery_at=now)
    logger.info("alert sent to %s: %s", channel, message.subject.removeprefix("[PortWatch] "))
    return NotificationStatus.SENT


def _failed(notification: Notification, error: str, *, permanent: bool) -> str:
    now = timezone.now()
    exhausted = notification.attempts >= settings.ALERT_MAX_ATTEMPTS
    if permanent or exhausted:
        status, next_attempt = NotificationStatus.FAILED, notification.next_attempt_at
        if exhausted and not permanent:
            error = f"{error} (gave up after {notification.attempts} attempts)"
    else:
        status, next_attempt = NotificationStatus.PENDING, now + backoff(notification.attempts)
    logger.warning(
        "notification %s to %s: %s%s",
        notification.public_id,
        notification.channel,
        error,
        "" if status == NotificationStatus.FAILED else f"; retrying at {next_attempt.isoformat()}",
    )
    with transaction.atomic():
        Notification.objects.filter(pk=notification.pk, status=NotificationStatus.SENDING).update(
            status=status, last_error=error[:2000], next_attempt_at=next_attempt, claimed_at=None
        )
        Channel.objects.filter(pk=notification.channel_id).update(
            last_error=error[:2000], last_error_at=now, failure_count=F("failure_count") + 1
        )
    return status


def dispatch_due(limit: int | None = None) -> int:
    """Give back dead claims, then send what is due, oldest first; return how many were sent.

    Runs periodically (beat) on the delivery queue: it delivers what the
    broker never carried (down at commit), digests whose window ended, and
    retries whose back-off passed.
    """
    now = timezone.now()
    lease = timedelta(seconds=settings.ALERT_CLAIM_LEASE_SECONDS)
    stale = Notification.objects.filter(status=NotificationStatus.SENDING, claimed_at__lt=now - lease)
    for notification_id in stale.values_list("pk", flat=True):
        if Notification.objects.filter(pk=notification_id, status=NotificationStatus.SENDING).update(
            status=NotificationStatus.PENDING, claimed_at=None, next_attempt_at=now
        ):
            logger.warning("notification %s: its delivery stopped answering; sending again", notification_id)
    due = Notification.objects.filter(status=NotificationStatus.PENDING, next_attempt_at__lte=now).order_by(
        "next_attempt_at", "pk"
    )
    sent = 0
    for notification_id in list(due.values_list("pk", flat=True)[: limit or settings.ALERT_DISPATCH_BATCH]):
        if deliver(notification_id) == NotificationStatus.SENT:
            sent += 1
    return sent


def retry(notification: Notification) -> bool:
    """A person asks for another try of a failed notification (from the failed list)."""
    updated = Notification.objects.filter(pk=notification.pk, status=NotificationStatus.FAILED).update(
        status=NotificationStatus.PENDING, attempts=0, next_attempt_at=timezone.now(), last_error=""
    )
    return bool(updated)


def dismiss(notification: Notification) -> bool:
    """A person gives up on a failed notification; it stays listed as dismissed."""
    return bool(
        Notification.objects.filter(pk=notification.pk, status=NotificationStatus.FAILED).update(
            status=NotificationStatus.DISMISSED
        )
    )


def handle_failed(notification: Notification, action: str, actor) -> bool:
    """An admin's "retry" or "dismiss" of a failed notification, audited; False
    if it was not failed (any more). The page and the API both call this."""
    from alerts.outbox import deliver_on_commit  # noqa: PLC0415
    from inventory import audit  # noqa: PLC0415

    with transaction.atomic():
        done = retry(notification) if action == "retry" else dismiss(notification)
        if done:
            if action == "retry":
                deliver_on_commit([notification.pk])
            audit.record(
                actor,
                f"notification.{action}",
                notification,
                summary=f"{action} of a failed notification to {notification.channel.name}",
            )
    return done


def send_test(channel: Channel) -> Notification:
    """Queue a test message to ``channel`` (delivered like any other, its outcome shown on the channel)."""
    from alerts.outbox import deliver_on_commit  # noqa: PLC0415

    now = timezone.now()
    notification = Notification.objects.create(
        channel=channel,
        kind=NotificationKind.TEST,
        dedupe_key=f"test-ch{channel.pk}-{now:%Y%m%dT%H%M%S%f}",
        created_at=now,
        next_attempt_at=now,
    )
    deliver_on_commit([notification.pk])
    return notification
