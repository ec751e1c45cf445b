"""The alerts API: channels, alert rules, notifications and mutes.

The same roles as the pages: channels are admin-only even to read (their
targets hold addresses and tokens, and are never returned: only the masked
form ``Channel.masked_target``; the webhook signing secret never leaves the
server); rules and notifications are read by everyone and changed by admins;
reviewers set and end mutes. Input is validated by the pages' forms.
"""

import django_filters
from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from alerts import delivery
from alerts.choices import ChannelKind, DeliveryMode, MuteScope, NotificationKind, NotificationStatus, WorkerEvent
from alerts.forms import RISK_CHOICES, AlertRuleForm, ChannelForm, MuteForm
from alerts.models import AlertRule, Channel, Mute, Notification
from alerts.views import channel_snapshot, with_change_count
from inventory import audit
from inventory.choices import NO_RISK, PolicyStatus
from portwatch.api.base import FormSerializer, RelatedIdsField, RoleMixin, save_audited
from portwatch.roles import Role
from scans.choices import ChangeKind

# --- channels ----------------------------------------------------------------------------


class ChannelSerializer(FormSerializer):
    """Where notifications go. ``target`` is write-only: it may hold a token."""

    form_class = ChannelForm

    id = serializers.UUIDField(source="public_id", read_only=True)
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    target = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="Email: addresses separated by commas. Webhook: an http(s) URL. Apprise: its URL. "
        "Never returned; on an update, leave it out to keep the current one.",
    )
    target_display = serializers.CharField(source="masked_target", read_only=True)
    mode = serializers.ChoiceField(choices=DeliveryMode.choices, default=DeliveryMode.IMMEDIATE)
    digest_minutes = serializers.IntegerField(default=60)
    allow_private = serializers.BooleanField(default=False)
    enabled = serializers.BooleanField(default=True)
    rules = RelatedIdsField(
        child=serializers.IntegerField(), required=False, help_text="Ids of the alert rules sent to this channel."
    )
    last_delivery_at = serializers.DateTimeField(read_only=True)
    last_error = serializers.CharField(read_only=True)
    last_error_at = serializers.DateTimeField(read_only=True)
    failure_count = serializers.IntegerField(read_only=True)

    def base_form_data(self):
        # Left out of an update, the stored target stays (it is never sent back to show).
        return {"target": self.instance.target} if self.instance is not None else {}

    def save_form(self):
        return save_audited(self.context["request"].user, self.form, "channel", snapshot=channel_snapshot)


class ChannelViewSet(RoleMixin, viewsets.ModelViewSet):
    serializer_class = ChannelSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    read_role = Role.ADMIN

    def get_queryset(self):
        return Channel.objects.prefetch_related("rules").order_by("name")

    def perform_destroy(self, channel):
        with transaction.atomic():
            channel = audit.record_delete(self.request.user, "channel.delete", channel, snapshot=channel_snapshot)
            channel.delete()

    @extend_schema(
        request=None,
        responses={
            202: inline_serializer("ChannelTest", {"notification": serializers.UUIDField()}),
        },
    )
    @action(detail=True, methods=["post"])
    def test(self, request, id=None):
        """Queue a test notification; its outcome shows on the channel within seconds."""
        channel = self.get_object()
        with transaction.atomic():
            notification = delivery.send_test(channel)
            audit.record(request.user, "channel.test", channel, summary="test notification queued")
        return Response({"notification": str(notification.public_id)}, status=status.HTTP_202_ACCEPTED)


# --- alert rules -----------------------------------------------------------------------------


class AlertRuleSerializer(FormSerializer):
    """Which changes alert, and on which channels. Empty lists mean any."""

    form_class = AlertRuleForm
    name_fields = {"zone": "name", "channels": "public_id", "vantage_points": "name"}

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=100)
    enabled = serializers.BooleanField(default=True)
    kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=[*ChangeKind.choices, *WorkerEvent.choices]), required=False
    )
    policy_statuses = serializers.ListField(child=serializers.ChoiceField(choices=PolicyStatus.choices), required=False)
    min_risk = serializers.ChoiceField(choices=RISK_CHOICES, default=NO_RISK, help_text="-1: any risk.")
    zone = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="Zone name.")
    tag = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="Tag name.")
    cidr = serializers.CharField(required=False, allow_blank=True, help_text="Only hosts in this network.")
    vantage_points = RelatedIdsField(
        key="name",
        child=serializers.CharField(max_length=63),
        required=False,
        help_text="Names of vantage points: only changes seen from them. Empty: from anywhere (see home_only).",
    )
    home_only = serializers.BooleanField(
        default=False, help_text="Only changes the zone's own scanners saw (with vantage_points, if any)."
    )
    channels = RelatedIdsField(key="public_id", child=serializers.UUIDField(), required=False, help_text="Channel ids.")
    built_in = serializers.BooleanField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, rule):
        data = super().to_representation(rule)
        data["zone"] = rule.zone.name if rule.zone_id else None
        data["tag"] = rule.tag.name if rule.tag_id else None
        return data

    def save_form(self):
        return save_audited(self.context["request"].user, self.form, "alert_rule")


class AlertRuleViewSet(RoleMixin, viewsets.ModelViewSet):
    serializer_class = AlertRuleSerializer
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return AlertRule.objects.select_related("zone", "tag").prefetch_related("channels", "vantage_points")

    def perform_destroy(self, rule):
        with transaction.atomic():
            rule = audit.record_delete(self.request.user, "alert_rule.delete", rule)
            rule.delete()


# --- notifications ------------------------------------------------------------------------------


class NotificationFilter(django_filters.FilterSet):
    """The notifications page's filters."""

    status = django_filters.ChoiceFilter(choices=NotificationStatus.choices)
    kind = django_filters.ChoiceFilter(choices=NotificationKind.choices)
    channel = django_filters.UUIDFilter(field_name="channel__public_id", label="Channel id")

    class Meta:
        model = Notification
        fields = ["status", "kind", "channel"]


class ChannelRefSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = Channel
        fields = ["id", "name", "kind"]


class NotificationSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    channel = ChannelRefSerializer(read_only=True)
    change_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id",
            "channel",
            "kind",
            "status",
            "suppressed_reason",
            "mute",
            "change_count",
            "created_at",
            "next_attempt_at",
            "attempts",
            "sent_at",
            "last_error",
        ]
        read_only_fields = fields


class NotificationDetailSerializer(NotificationSerializer):
    changes = serializers.SerializerMethodField(help_text="Ids of the changes it reports (at most 500).")

    class Meta(NotificationSerializer.Meta):
        fields = [*NotificationSerializer.Meta.fields, "changes"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_changes(self, notification):
        changes = notification.changes.order_by("created_at", "pk").values_list("public_id", flat=True)[:500]
        return [str(public_id) for public_id in changes]


class NotificationViewSet(RoleMixin, viewsets.ReadOnlyModelViewSet):
    """The outbox: what was sent, is pending, failed or was held back. Admins retry or dismiss failures."""

    filterset_class = NotificationFilter
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    action_roles = {"retry": Role.ADMIN, "dismiss": Role.ADMIN}

    def get_queryset(self):
        return with_change_count(Notification.objects.select_related("channel"))

    def get_serializer_class(self):
        return NotificationSerializer if self.action == "list" else NotificationDetailSerializer

    def _act(self, request, name: str):
        notification = self.get_object()
        if not delivery.handle_failed(notification, name, request.user):
            return Response(
                {"detail": "Only a failed notification can be retried or dismissed; this one is not failed."},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(NotificationDetailSerializer(self.get_object()).data)

    @extend_schema(
        request=None,
        responses={200: NotificationDetailSerializer, 409: OpenApiResponse(description="Not a failed notification.")},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, id=None):
        """Send a failed notification again."""
        return self._act(request, "retry")

    @extend_schema(
        request=None,
        responses={200: NotificationDetailSerializer, 409: OpenApiResponse(description="Not a failed notification.")},
    )
    @action(detail=True, methods=["post"])
    def dismiss(self, request, id=None):
        """Give up on a failed notification; it stays listed."""
        return self._act(request, "dismiss")


# --- mutes ----------------------------------------------------------------------------------------


class MuteSerializer(FormSerializer):
    """A maintenance window: changes in its scope are recorded and shown, not sent."""

    form_class = MuteForm
    name_fields = {"zone": "name"}

    id = serializers.IntegerField(read_only=True)
    scope = serializers.ChoiceField(choices=MuteScope.choices, default=MuteScope.GLOBAL)
    zone = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="Zone name.")
    tag = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="Tag name.")
    cidr = serializers.CharField(required=False, allow_blank=True)
    host_address = serializers.CharField(required=False, allow_blank=True)
    starts_at = serializers.DateTimeField(default=timezone.now)
    ends_at = serializers.DateTimeField()
    reason = serializers.CharField(max_length=300)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    active = serializers.SerializerMethodField()

    def get_active(self, mute) -> bool:
        return mute.is_active()

    def to_representation(self, mute):
        data = super().to_representation(mute)
        data["zone"] = mute.zone.name if mute.zone_id else None
        data["tag"] = mute.tag.name if mute.tag_id else None
        data["host_address"] = mute.host.address if mute.host_id else ""
        return data

    def save_form(self):
        user = self.context["request"].user
        with transaction.atomic():
            self.form.instance.created_by = user
            mute = self.form.save()
            audit.record(user, "mute.create", mute, after=audit.snapshot(mute))
        return mute


class MuteViewSet(RoleMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Mutes: everyone reads them; reviewers set and end them."""

    serializer_class = MuteSerializer
    write_role = Role.REVIEWER
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return Mute.objects.select_related("zone", "tag", "host", "created_by").order_by("-starts_at", "-id")

    @extend_schema(request=None, responses={200: MuteSerializer})
    @action(detail=True, methods=["post"])
    def end(self, request, pk=None):
        """End the mute now (a mute that already ended is left as it is)."""
        mute = self.get_object()
        now = timezone.now()
        if mute.ends_at > now:
            with transaction.atomic():
                before = audit.snapshot(mute)
                mute.ends_at = max(now, mute.starts_at)
                mute.save(update_fields=["ends_at"])
                audit.record(request.user, "mute.end", mute, before=before, after=audit.snapshot(mute))
        return Response(MuteSerializer(mute, context=self.get_serializer_context()).data)


def register(router) -> None:
    router.register("channels", ChannelViewSet, basename="channel")
    router.register("alert-rules", AlertRuleViewSet, basename="alert-rule")
    router.register("notifications", NotificationViewSet, basename="notification")
    router.register("mutes", MuteViewSet, basename="mute")
