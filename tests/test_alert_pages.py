"""Configuring alerts through the pages: channels, alert rules, mutes, the failed list."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.choices import ChannelKind, MuteScope, NotificationKind, NotificationStatus
from alerts.models import AlertRule, Channel, Mute, Notification
from inventory.models import AuditEntry
from tests.factories import observe

pytestmark = pytest.mark.django_db

SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"


def channel_form(**fields):
    data = {"name": "soc", "kind": ChannelKind.WEBHOOK, "target": "http://127.0.0.1:8999/hook", "mode": "immediate"}
    data |= {"digest_minutes": 60, "allow_private": "on", "enabled": "on"}
    data |= fields
    return {key: value for key, value in data.items() if value is not None}


def test_an_admin_adds_a_webhook_channel_with_the_default_rules_ticked(as_admin):
    page = as_admin.get(reverse("channel-create"))
    assert page.status_code == 200
    default_rules = set(AlertRule.objects.filter(built_in=True).values_list("pk", flat=True))
    assert set(page.context["form"].initial["rules"]) == set(AlertRule.objects.filter(pk__in=default_rules))

    response = as_admin.post(reverse("channel-create"), channel_form(rules=list(default_rules)))

    channel = Channel.objects.get()
    assert response.status_code == 302 and response.url == channel.get_absolute_url()
    assert set(channel.rules.values_list("pk", flat=True)) == default_rules
    entry = AuditEntry.objects.get(action="channel.create")
    assert channel.signing_secret not in str(entry.after)
    detail = as_admin.get(channel.get_absolute_url()).content.decode()
    assert channel.signing_secret in detail and "X-PortWatch-Signature" in detail


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"target": "http://169.254.169.254/latest/meta-data/"}, "cloud-metadata"),
        ({"target": "http://[fe80::1]/"}, "link-local"),
        ({"target": "http://198.18.0.5/hook", "allow_private": None}, "an admin must allow private addresses"),
        ({"target": "ftp://example.org/"}, "starts with http:// or https://"),
        ({"target": "http://127.0.0.1:99999/"}, "port is not a number"),
        ({"kind": ChannelKind.EMAIL, "target": "soc@example.org, not an address"}, "is not an email address"),
        ({"kind": ChannelKind.EMAIL, "target": ""}, "at least one email address"),
        ({"kind": ChannelKind.APPRISE, "target": "nosuchservice://token"}, "Apprise does not recognise"),
        ({"kind": ChannelKind.APPRISE, "target": "json://169.254.169.254/"}, "cloud-metadata"),
        ({"mode": "digest", "digest_minutes": 0}, "1 to 10,080 minutes"),
        ({"kind": "carrier-pigeon"}, "not one of the available choices"),
    ],
)
def test_a_bad_channel_gets_a_clear_error_and_writes_nothing(as_admin, fields, message):
    response = as_admin.post(reverse("channel-create"), channel_form(**fields))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Channel.objects.exists() and not AuditEntry.objects.filter(action="channel.create").exists()


def test_an_apprise_url_holds_a_token_and_is_never_shown_again(as_admin):
    as_admin.post(reverse("channel-create"), channel_form(kind=ChannelKind.APPRISE, target=SLACK, allow_private=None))
    channel = Channel.objects.get()
    assert channel.target == SLACK
    token = "TIiajkdnlazkcOXrIdevi7FQ"
    for url in (reverse("channel-list"), channel.get_absolute_url(), reverse("channel-edit", args=[channel.public_id])):
        assert token not in as_admin.get(url).content.decode()
    assert token not in str(AuditEntry.objects.get(action="channel.create").after)

    # Saved again with the URL left empty: the stored URL stays.
    as_admin.post(
        reverse("channel-edit", args=[channel.public_id]),
        channel_form(kind=ChannelKind.APPRISE, target="", name="soc chat", allow_private=None),
    )
    channel.refresh_from_db()
    assert channel.name == "soc chat" and channel.target == SLACK


def test_send_test_queues_a_test_notification_and_audits_it(as_admin):
    channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
    response = as_admin.post(reverse("channel-test", args=[channel.public_id]))
    assert response.status_code == 302
    notification = Notification.objects.get()
    assert notification.kind == NotificationKind.TEST and notification.status == NotificationStatus.PENDING
    assert AuditEntry.objects.filter(action="channel.test").exists()


def test_alert_rules_are_written_and_checked_through_the_form(as_admin):
    channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
    data = {"name": "pci high", "enabled": "on", "kinds": ["port_opened"], "policy_statuses": ["unreviewed"]}
    data |= {"min_risk": 3, "cidr": "127.62.0.0/16", "channels": [channel.pk]}

    bad = as_admin.post(reverse("alert-rule-create"), data | {"cidr": "127.62.0.0/33"})
    assert "is not a network" in bad.content.decode() and not AlertRule.objects.filter(name="pci high").exists()
    bad = as_admin.post(reverse("alert-rule-create"), data | {"kinds": ["port_exploded"]})
    assert "not one of the available choices" in bad.content.decode()

    response = as_admin.post(reverse("alert-rule-create"), data)
    assert response.status_code == 302
    rule = AlertRule.objects.get(name="pci high")
    assert (rule.kinds, rule.policy_statuses, rule.min_risk, rule.cidr) == (
        ["port_opened"],
        ["unreviewed"],
        3,
        "127.62.0.0/16",
    )
    assert list(rule.channels.all()) == [channel]
    assert AuditEntry.objects.filter(action="alert_rule.create").exists()


def test_a_reviewer_sets_a_maintenance_window_and_ends_it(client, reviewer):
    client.force_login(reviewer)
    now = timezone.localtime()
    data = {"scope": MuteScope.CIDR, "cidr": "127.62.0.0/24", "reason": "patching CHG-42"}
    data |= {
        "starts_at": now.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
    }

    ends_first = data | {"ends_at": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")}
    assert "must come after the start" in client.post(reverse("mute-create"), ends_first).content.decode()
    no_network = data | {"cidr": ""}
    assert "needs this field" in client.post(reverse("mute-create"), no_network).content.decode()
    unknown_host = data | {"scope": MuteScope.HOST, "host_address": "127.62.0.99"}
    assert "No host has this address" in client.post(reverse("mute-create"), unknown_host).content.decode()
    assert not Mute.objects.exists()

    assert client.post(reverse("mute-create"), data).status_code == 302
    mute = Mute.objects.get()
    assert mute.is_active() and mute.created_by == reviewer
    client.post(reverse("mute-end", args=[mute.pk]))
    mute.refresh_from_db()
    assert not mute.is_active()
    assert {"mute.create", "mute.end"} <= set(AuditEntry.objects.values_list("action", flat=True))


def test_a_host_page_says_it_is_muted_and_mutes_it_from_a_link(client, reviewer, viewer):
    from inventory.models import Host, Tag

    observe({"127.62.1.1": [22], "127.62.2.1": [22]})
    host = Host.objects.get(address="127.62.1.1")
    client.force_login(reviewer)
    page = client.get(host.get_absolute_url()).content.decode()
    assert "not muted" in page and "Mute alerts for this host" in page

    # The link opens the mute form filled in for this host; saving it mutes the host alone.
    link = reverse("mute-create") + "?scope=host&host_address=127.62.1.1&reason="
    assert 'href="' + link.replace("&", "&amp;") + '"' in page
    form = client.get(link).content.decode()
    assert 'value="127.62.1.1"' in form and 'value="host" selected' in form
    now = timezone.localtime()
    data = {"scope": MuteScope.HOST, "host_address": "127.62.1.1", "reason": "reboot for patches"}
    data |= {
        "starts_at": now.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    }
    assert client.post(reverse("mute-create"), data).status_code == 302
    page = client.get(host.get_absolute_url()).content.decode()
    assert "muted</span> until" in page and "host 127.62.1.1: reboot for patches" in page
    other = Host.objects.get(address="127.62.2.1")
    assert "not muted" in client.get(other.get_absolute_url()).content.decode()

    # A tag's window covers the hosts that carry it; a viewer sees it, without the link.
    tag = Tag.objects.create(name="db")
    other.tags.add(tag)
    Mute.objects.create(scope=MuteScope.TAG, tag=tag, ends_at=timezone.now() + timedelta(hours=1), reason="db work")
    client.force_login(viewer)
    page = client.get(other.get_absolute_url()).content.decode()
    assert "tag db: db work" in page and "Mute alerts for this host" not in page


def test_the_failed_list_shows_the_error_escaped_and_an_admin_retries_or_dismisses(as_admin):
    channel = Channel.objects.create(name="hook", kind=ChannelKind.WEBHOOK, target="http://127.0.0.1:9/")
    channel.rules.set(AlertRule.objects.all())
    observe({"127.62.0.1": [22]})
    first = Notification.objects.get()
    Notification.objects.filter(pk=first.pk).update(
        status=NotificationStatus.FAILED, last_error="HTTP 400 from the receiver: <script>alert(1)</script>"
    )

    page = as_admin.get(reverse("notification-list") + "?status=failed").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "1 notification failed" in page
    # Each notification says what it reports, not "changes · 1".
    assert "127.62.0.1 22/tcp port opened and 1 more change" in page  # the host discovered, then its port

    response = as_admin.post(reverse("notification-retry", args=[first.public_id]), {"next": "https://evil.example/"})
    assert response.url == first.get_absolute_url()  # never back to another site
    first.refresh_from_db()
    assert first.status == NotificationStatus.PENDING and first.attempts == 0

    Notification.objects.filter(pk=first.pk).update(status=NotificationStatus.FAILED)
    as_admin.post(reverse("notification-dismiss", args=[first.public_id]))
    first.refresh_from_db()
    assert first.status == NotificationStatus.DISMISSED
    assert {"notification.retry", "notification.dismiss"} <= set(AuditEntry.objects.values_list("action", flat=True))
    detail = as_admin.get(first.get_absolute_url()).content.decode()
    assert "22/tcp" in detail
