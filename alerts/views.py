"""Pages of the alerts app.

Everyone with a role sees notifications, rules and mutes; reviewers set and
end mutes; admins manage channels and rules and retry or dismiss failed
notifications. Channels are admin-only even to read: their targets hold
addresses and tokens.
"""

from django.contrib import messages
from django.db import transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import CreateView, DetailView, ListView, UpdateView

from alerts import delivery
from alerts.choices import NotificationKind, NotificationStatus
from alerts.forms import AlertRuleForm, ChannelForm, MuteForm
from alerts.messages import event_title
from alerts.models import AlertRule, Channel, Mute, Notification, NotificationItem
from inventory import audit, paging
from portwatch.roles import Role, RoleRequiredMixin
from scans.models import Change

CHANNEL_AUDIT_FIELDS = ["name", "kind", "mode", "digest_minutes", "allow_private", "enabled"]


def with_change_count(notifications):
    """Each notification's number of changes, counted for the listed rows only (a digest may hold many)."""
    count = (
        NotificationItem.objects.filter(notification=OuterRef("pk"))
        .order_by()
        .values("notification")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return notifications.annotate(change_count=Coalesce(Subquery(count), 0)).order_by("-created_at", "-id")


def _first_change(port_only: bool) -> Subquery:
    # Along the (notification, change) index, stopping at the first match: bounded even for a large digest.
    items = NotificationItem.objects.filter(notification=OuterRef("pk"))
    if port_only:
        items = items.filter(change__port__isnull=False)
    return Subquery(items.order_by("change_id").values("change_id")[:1])


def with_summaries(notifications) -> list:
    """The listed notifications (``with_change_count``), each with ``summary``: what it reports, in words.

    It names a port's change rather than its host's (the port is what is decided on). Read
    for the listed page only, in two queries (the API's lists do not need it)."""
    notifications = list(notifications)
    first = dict(
        Notification.objects.filter(pk__in=[n.pk for n in notifications])
        .annotate(first=Coalesce(_first_change(port_only=True), _first_change(port_only=False)))
        .values_list("pk", "first")
    )
    changes = Change.objects.select_related("host").in_bulk({pk for pk in first.values() if pk is not None})
    for notification in notifications:
        notification.summary = summary(notification, changes.get(first.get(notification.pk)))
    return notifications


def summary(notification: Notification, first: Change | None) -> str:
    if notification.kind == NotificationKind.TEST:
        return "Test notification"
    if notification.kind == NotificationKind.WORKERS and notification.event:
        return event_title(notification.event)
    if first is None:
        return "No changes"
    where = first.host.address + (f" {first.port}/{first.protocol}" if first.port is not None else "")
    what = f"{where} {first.get_kind_display()}"
    more = notification.change_count - 1
    digest = "Digest: " if notification.kind == NotificationKind.DIGEST else ""
    return f"{digest}{what}" + (f" and {more} more change{'s' if more != 1 else ''}" if more > 0 else "")


def channel_snapshot(channel: Channel) -> dict:
    """What the audit log keeps of a channel: never its token-bearing URL or its secret."""
    data = audit.snapshot(channel, CHANNEL_AUDIT_FIELDS)
    data["target"] = channel.masked_target
    data["rules"] = sorted(channel.rules.values_list("name", flat=True)) if channel.pk else []
    return data


# --- notifications ---------------------------------------------------------------------


class NotificationListView(paging.KeysetPaginationMixin, RoleRequiredMixin, ListView):
    paginate_by = 50
    template_name = "alerts/notification_list.html"

    def get_queryset(self):
        notifications = with_change_count(Notification.objects.select_related("channel", "mute"))
        status = self.request.GET.get("status")
        if status in NotificationStatus.values:
            notifications = notifications.filter(status=status)
        channel = self.request.GET.get("channel")
        if channel and channel.isdigit():
            notifications = notifications.filter(channel_id=int(channel))
        return notifications

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        counts = Notification.objects.aggregate(
            failed=Count("pk", filter=Q(status=NotificationStatus.FAILED)),
            pending=Count("pk", filter=Q(status__in=[NotificationStatus.PENDING, NotificationStatus.SENDING])),
        )
        context.update(counts=counts, statuses=NotificationStatus.choices, channels=Channel.objects.all())
        context["object_list"] = with_summaries(context["object_list"])
        return context


class NotificationDetailView(RoleRequiredMixin, DetailView):
    slug_field = slug_url_kwarg = "public_id"
    template_name = "alerts/notification_detail.html"
    context_object_name = "notification"

    def get_queryset(self):
        return Notification.objects.select_related("channel", "mute", "chunk__run")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        changes = self.object.changes.select_related("host__zone", "run").order_by("host__address", "protocol", "port")
        context["changes"] = changes[:500]
        context["change_count"] = changes.count()
        return context


class NotificationActionView(RoleRequiredMixin, View):
    """Retry or dismiss a failed notification (admins)."""

    required_role = Role.ADMIN
    http_method_names = ["post"]
    action = ""

    def post(self, request, public_id):
        notification = get_object_or_404(Notification.objects.select_related("channel"), public_id=public_id)
        done = delivery.handle_failed(notification, self.action, request.user)
        if done:
            text = "Sending again." if self.action == "retry" else "Dismissed; it stays listed."
            messages.success(request, text)
        else:
            messages.error(request, "Only a failed notification can be retried or dismissed; this one is not failed.")
        back = request.POST.get("next", "")
        safe = url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        return redirect(back if back and safe else notification.get_absolute_url())


# --- channels ----------------------------------------------------------------------------


class ChannelListView(RoleRequiredMixin, ListView):
    required_role = Role.ADMIN
    template_name = "alerts/channel_list.html"

    def get_queryset(self):
        return (
            Channel.objects.prefetch_related("rules")
            .annotate(
                failed=Count("notifications", filter=Q(notifications__status=NotificationStatus.FAILED)),
                pending=Count("notifications", filter=Q(notifications__status=NotificationStatus.PENDING)),
            )
            .order_by("name")
        )


class ChannelDetailView(RoleRequiredMixin, DetailView):
    required_role = Role.ADMIN
    slug_field = slug_url_kwarg = "public_id"
    template_name = "alerts/channel_detail.html"
    context_object_name = "channel"
    model = Channel

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["notifications"] = with_summaries(with_change_count(self.object.notifications.all())[:20])
        return context


class ChannelCreateView(audit.AuditedFormMixin, RoleRequiredMixin, CreateView):
    required_role = Role.ADMIN
    audit_name = "channel"
    model = Channel
    form_class = ChannelForm
    template_name = "alerts/channel_form.html"

    def audit_snapshot(self, instance):
        return channel_snapshot(instance)

    def form_valid(self, form):
        messages.success(self.request, f"Channel “{form.instance.name}” saved. Send a test to check it.")
        return super().form_valid(form)


class ChannelUpdateView(ChannelCreateView, UpdateView):
    slug_field = slug_url_kwarg = "public_id"


class ChannelDeleteView(RoleRequiredMixin, View):
    required_role = Role.ADMIN
    http_method_names = ["post"]

    def post(self, request, public_id):
        channel = get_object_or_404(Channel, public_id=public_id)
        with transaction.atomic():
            channel = audit.record_delete(request.user, "channel.delete", channel, snapshot=channel_snapshot)
            channel.delete()
        messages.success(request, f"Channel “{channel.name}” removed, with its notifications.")
        return redirect("channel-list")


class ChannelTestView(RoleRequiredMixin, View):
    required_role = Role.ADMIN
    http_method_names = ["post"]

    def post(self, request, public_id):
        channel = get_object_or_404(Channel, public_id=public_id)
        with transaction.atomic():
            delivery.send_test(channel)
            audit.record(request.user, "channel.test", channel, summary="test notification queued")
        messages.success(request, "Test notification queued: its outcome shows here within a few seconds.")
        return redirect(channel)


# --- alert rules ----------------------------------------------------------------------------


class AlertRuleListView(RoleRequiredMixin, ListView):
    template_name = "alerts/rule_list.html"

    def get_queryset(self):
        return AlertRule.objects.select_related("zone", "tag").prefetch_related("channels", "vantage_points")


class AlertRuleCreateView(audit.AuditedFormMixin, RoleRequiredMixin, CreateView):
    required_role = Role.ADMIN
    audit_name = "alert_rule"
    model = AlertRule
    form_class = AlertRuleForm
    template_name = "alerts/rule_form.html"
    success_url = reverse_lazy("alert-rule-list")

    def form_valid(self, form):
        messages.success(self.request, f"Alert rule “{form.instance.name}” saved.")
        return super().form_valid(form)


class AlertRuleUpdateView(AlertRuleCreateView, UpdateView):
    pass


class AlertRuleDeleteView(RoleRequiredMixin, View):
    required_role = Role.ADMIN
    http_method_names = ["post"]

    def post(self, request, pk):
        rule = get_object_or_404(AlertRule, pk=pk)
        with transaction.atomic():
            rule = audit.record_delete(request.user, "alert_rule.delete", rule)
            rule.delete()
        messages.success(request, f"Alert rule “{rule.name}” removed.")
        return redirect("alert-rule-list")


# --- mutes ------------------------------------------------------------------------------------


class MuteListView(paging.KeysetPaginationMixin, RoleRequiredMixin, ListView):
    paginate_by = 50
    template_name = "alerts/mute_list.html"

    def get_queryset(self):
        return (
            Mute.objects.select_related("zone", "tag", "host", "created_by")
            .annotate(held_back=Count("notifications__items"))
            .order_by("-starts_at", "-id")
        )

    def get_context_data(self, **kwargs):
        return super().get_context_data(now=timezone.now(), **kwargs)


class MuteCreateView(RoleRequiredMixin, CreateView):
    required_role = Role.REVIEWER
    model = Mute
    form_class = MuteForm
    template_name = "alerts/mute_form.html"

    def get_initial(self):
        now = timezone.localtime().replace(second=0, microsecond=0)
        initial = {"starts_at": now, "ends_at": now + timezone.timedelta(hours=2)}
        # Filled in from a link ("Mute alerts for this host..." on the host page); the form checks them.
        for name in ("scope", "zone", "tag", "cidr", "host_address"):
            if self.request.GET.get(name):
                initial[name] = self.request.GET[name]
        return initial

    def form_valid(self, form):
        with transaction.atomic():
            form.instance.created_by = self.request.user
            self.object = form.save()
            audit.record(self.request.user, "mute.create", self.object, after=audit.snapshot(self.object))
        messages.success(
            self.request, f"Alerts muted for {self.object.scope_label} until {self.object.ends_at:%Y-%m-%d %H:%M}."
        )
        return redirect("mute-list")


class MuteEndView(RoleRequiredMixin, View):
    required_role = Role.REVIEWER
    http_method_names = ["post"]

    def post(self, request, pk):
        mute = get_object_or_404(Mute, pk=pk)
        now = timezone.now()
        if mute.ends_at > now:
            with transaction.atomic():
                before = audit.snapshot(mute)
                mute.ends_at = max(now, mute.starts_at)
                mute.save(update_fields=["ends_at"])
                audit.record(request.user, "mute.end", mute, before=before, after=audit.snapshot(mute))
            messages.success(request, f"The mute of {mute.scope_label} has ended.")
        return redirect(reverse("mute-list"))
