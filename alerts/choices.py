"""Choices of the alerts app, named once."""

from django.db import models


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook (signed JSON)"
    # Slack, Microsoft Teams, Discord, Telegram, ntfy... through Apprise URLs.
    APPRISE = "apprise", "Chat or push (Apprise URL)"
    # A JSON-lines file under var/: the demo's channel, and a local audit trail.
    LOG = "log", "Local log file"


class DeliveryMode(models.TextChoices):
    IMMEDIATE = "immediate", "Immediately"
    DIGEST = "digest", "Digest every N minutes"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SENDING = "sending", "sending"
    SENT = "sent", "sent"
    # A permanent error or exhausted retries: shown in the failed list until retried or dismissed.
    FAILED = "failed", "failed"
    DISMISSED = "dismissed", "dismissed"
    # Recorded and shown, never sent: a mute covered the changes, or the ports were flapping.
    SUPPRESSED = "suppressed", "suppressed"


class NotificationKind(models.TextChoices):
    CHANGES = "changes", "changes"
    DIGEST = "digest", "digest"
    TEST = "test", "test"
    WORKERS = "workers", "workers"


class WorkerEvent(models.TextChoices):
    """What alert rules can select besides changes: a vantage point's workers falling silent, and back
    (alerts.watch). Not changes of a host: they have their own notifications (NotificationKind.WORKERS)."""

    SILENT = "vantage_silent", "workers went silent"
    BACK = "vantage_back", "workers are back"


class SuppressReason(models.TextChoices):
    MUTED = "muted", "muted"
    FLAPPING = "flapping", "flapping"


class MuteScope(models.TextChoices):
    GLOBAL = "global", "Everything"
    ZONE = "zone", "Zone"
    TAG = "tag", "Tag"
    CIDR = "cidr", "Network (CIDR)"
    HOST = "host", "Host"
