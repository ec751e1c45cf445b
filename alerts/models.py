"""Alert rules, channels, mutes and the outbox of notifications.

Data flows one way: the scan engine records changes, ``alerts.outbox`` turns
the ones that rules select into Notification rows in the same transaction,
and ``alerts.delivery`` sends those rows through the channel's transport.
"""

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from alerts.choices import (
    ChannelKind,
    DeliveryMode,
    MuteScope,
    NotificationKind,
    NotificationStatus,
    SuppressReason,
)
from inventory.choices import NO_RISK
from inventory.models import Host, Tag, Zone
from scans.models import Change, ScanChunk


def new_signing_secret() -> str:
    return secrets.token_urlsafe(32)


class Channel(models.Model):
    """Where notifications go: an email list, a webhook, an Apprise URL or the local log.

    ``target`` holds the addresses or URL; Apprise URLs carry their service's
    token, so channels are shown and audited without it (see ``masked_target``).
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    target = models.TextField(blank=True)
    # Webhooks sign each body with it (HMAC-SHA256); the receiver checks it.
    signing_secret = models.CharField(max_length=64, default=new_signing_secret, editable=False)
    # Private, loopback and shared addresses are refused unless an admin allows them
    # here; link-local and cloud-metadata addresses are refused always.
    allow_private = models.BooleanField(
        default=False, help_text="Allow private, loopback and shared network addresses (never link-local or metadata)."
    )
    mode = models.CharField(max_length=16, choices=DeliveryMode.choices, default=DeliveryMode.IMMEDIATE)
    digest_minutes = models.PositiveIntegerField(default=60)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Delivery health, shown on the channels page.
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    failure_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("channel-detail", args=[self.public_id])

    @property
    def masked_target(self) -> str:
        """The target as it may be shown to anyone: Apprise and webhook URLs lose their secrets."""
        if self.kind == ChannelKind.EMAIL:
            return self.target
        if self.kind == ChannelKind.LOG:
            return str(settings.ALERT_LOG_FILE)  # where the lines go, as configured
        if self.kind == ChannelKind.APPRISE:
            # Services put tokens anywhere in the URL, even where a host would be.
            scheme = self.target.partition("://")[0]
            return f"{scheme}://…" if scheme.isalnum() else "(not a URL)"
        from alerts.addresses import mask_url  # noqa: PLC0415 - keeps models import-light

        return mask_url(self.target)


class AlertRule(models.Model):
    """Which changes alert, and on which channels.

    An empty list of kinds or policy statuses means any; ``min_risk`` of
    NO_RISK means any risk. Policy status and risk are read from the port's
    Service row as the ingest left it (so a rule can say "unreviewed port
    opened"); host-level changes have no policy status and only match rules
    that do not ask for one. A change carries the vantage point it was seen
    from; a rule may ask for some (``vantage_points``, ``home_only``).
    """

    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    kinds = models.JSONField(default=list, blank=True)
    policy_statuses = models.JSONField(default=list, blank=True)
    min_risk = models.SmallIntegerField(default=NO_RISK)
    zone = models.ForeignKey(Zone, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    tag = models.ForeignKey(Tag, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    cidr = models.CharField("network", max_length=50, blank=True)
    # Where the change was seen from (DESIGN.md, "Views of a port"): the
    # vantage points chosen, and with ``home_only`` the zone's home (what the
    # inventory itself sees). Neither: from anywhere.
    vantage_points = models.ManyToManyField(
        "reach.VantagePoint",
        blank=True,
        related_name="alert_rules",
        help_text="Only changes seen from these vantage points. None chosen: from anywhere (or see below).",
    )
    home_only = models.BooleanField(
        default=False,
        verbose_name="Seen from the zone's home",
        help_text="Only changes the zone's own scanners saw (with the vantage points chosen above, if any): "
        "a host unreachable from elsewhere is usually good news.",
    )
    # The host's own report (listeners): which listener changes, by where the
    # socket listens. Other changes are not narrowed by it.
    bind_scopes = models.JSONField(
        default=list,
        blank=True,
        verbose_name="Listening on",
        help_text="Only listener changes (added, removed, rebound) of sockets listening here. None ticked: any.",
    )
    channels = models.ManyToManyField(Channel, blank=True, related_name="rules")
    # Created by a data migration: the defaults a new installation starts with.
    built_in = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Mute(models.Model):
    """A maintenance window: changes in its scope and time are recorded, shown, not sent."""

    scope = models.CharField(max_length=8, choices=MuteScope.choices, default=MuteScope.GLOBAL)
    zone = models.ForeignKey(Zone, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    tag = models.ForeignKey(Tag, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    cidr = models.CharField("network", max_length=50, blank=True)
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=300)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-starts_at", "-id"]

    def __str__(self):
        return f"mute of {self.scope_label} ({self.reason})"

    @property
    def scope_label(self) -> str:
        return {
            MuteScope.GLOBAL: "everything",
            MuteScope.ZONE: f"zone {self.zone.name if self.zone else '?'}",
            MuteScope.TAG: f"tag {self.tag.name if self.tag else '?'}",
            MuteScope.CIDR: f"network {self.cidr}",
            MuteScope.HOST: f"host {self.host.address if self.host else '?'}",
        }[self.scope]

    def is_active(self, at=None) -> bool:
        at = at or timezone.now()
        return self.starts_at <= at < self.ends_at


class Notification(models.Model):
    """The outbox row: one message to one channel, written with the changes it reports.

    ``dedupe_key`` makes the write idempotent (one notification per chunk and
    channel, or per digest window and channel); ``public_id`` is the
    idempotency key receivers see, the same on every attempt.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=NotificationKind.choices, default=NotificationKind.CHANGES)
    dedupe_key = models.CharField(max_length=120, unique=True)
    status = models.CharField(max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    suppressed_reason = models.CharField(max_length=16, choices=SuppressReason.choices, blank=True)
    mute = models.ForeignKey(Mute, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications")
    chunk = models.ForeignKey(ScanChunk, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    changes = models.ManyToManyField(Change, through="NotificationItem", related_name="notifications")
    created_at = models.DateTimeField(default=timezone.now)
    # Not sent before this (a digest's window end, a retry's back-off).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # A workers notification's event (alerts.watch): the vantage point, what happened, since when.
    event = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The dispatcher's work queue: pending rows by due time (few at any moment).
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status=NotificationStatus.PENDING),
                name="notification_due_idx",
            ),
            # Claims whose worker died, given back by the dispatcher.
            models.Index(
                fields=["claimed_at"], condition=Q(status=NotificationStatus.SENDING), name="notification_claim_idx"
            ),
            # The notifications page, by status (the failed list).
            models.Index(fields=["status", "-created_at"], name="notification_status_idx"),
            # The notifications page and API, newest first, paged by keyset (inventory.paging).
            models.Index(fields=["-created_at", "-id"], name="notification_created_idx"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} notification to {self.channel}"

    def get_absolute_url(self):
        return reverse("notification-detail", args=[self.public_id])


class NotificationItem(models.Model):
    """A change a notification reports (or records as suppressed)."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="items")
    change = models.ForeignKey(Change, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["notification", "change"], name="notification_item_unique"),
        ]
        indexes = [models.Index(fields=["change"], name="notification_item_change_idx")]

    def __str__(self):
        return f"change {self.change_id} in notification {self.notification_id}"


class VantageWatch(models.Model):
    """What alerts.watch last saw of a vantage point's workers: a change of it is an alert."""

    vantage = models.OneToOneField("reach.VantagePoint", on_delete=models.CASCADE, related_name="+")
    listening = models.BooleanField()
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.vantage_id}: {'listening' if self.listening else 'silent'}"
