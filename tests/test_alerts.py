"""Alerts: which changes alert, the outbox, and delivery to real receivers on loopback.

Delivery is called here as the dispatcher calls it (``alerts.delivery``);
the Celery path, the broker being down and the full scan loop are in
test_alert_loop.py.
"""

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from alerts import delivery, outbox
from alerts.choices import ChannelKind, DeliveryMode, MuteScope, NotificationKind, NotificationStatus, SuppressReason
from alerts.models import AlertRule, Channel, Mute, Notification
from alerts.templatetags.alert_text import chat
from inventory import policy
from inventory.choices import Decision, PolicyStatus, RuleScope
from inventory.models import Host, HostTag, PortRule, Service, Tag, Zone
from scans.choices import ChangeKind
from scans.models import Change
from tests.factories import observe
from tests.receivers import SmtpSink

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

A, B = "127.62.0.1", "127.62.0.2"
HOSTILE = "<b>x</b> *bold* [click](http://evil.example) <!channel> @everyone\nX-Forged: 1"


@pytest.fixture
def smtp():
    sink = SmtpSink()
    # pytest-django swaps in the in-memory backend: these tests talk real SMTP.
    smtp_backend = "django.core.mail.backends.smtp.EmailBackend"
    with override_settings(EMAIL_BACKEND=smtp_backend, EMAIL_HOST="127.0.0.1", EMAIL_PORT=sink.port):
        yield sink
    sink.stop()


def webhook(url, *, rules=None, **fields) -> Channel:
    fields.setdefault("allow_private", True)  # the receiver is on loopback
    channel = Channel.objects.create(name=fields.pop("name", "hook"), kind=ChannelKind.WEBHOOK, target=url, **fields)
    channel.rules.set(rules if rules is not None else AlertRule.objects.all())
    return channel


def pending(channel=None):
    notifications = Notification.objects.filter(status=NotificationStatus.PENDING)
    return notifications.filter(channel=channel) if channel else notifications


def items(notification) -> set[tuple]:
    return set(notification.changes.values_list("kind", "host__address", "port"))


def decide(port, decision, address=A):
    rule = PortRule.objects.create(
        scope=RuleScope.HOST,
        host=Host.objects.get(address=address),
        protocol="tcp",
        port_start=port,
        port_end=port,
        decision=decision,
        justification="test",
    )
    policy.rule_changed(rule)
    return rule


def due_now():
    Notification.objects.filter(status=NotificationStatus.PENDING).update(next_attempt_at=timezone.now())


# --- which changes alert -----------------------------------------------------------------


def test_without_a_channel_the_default_rules_write_nothing():
    observe({A: [22]})
    assert AlertRule.objects.filter(built_in=True).count() == 9
    assert not Notification.objects.exists()


def test_a_scan_writes_one_notification_per_channel_holding_the_changes_the_rules_select():
    channel = webhook("http://127.0.0.1:9/")
    observe({A: [22, 80], B: []})

    notification = pending(channel).get()
    assert notification.kind == NotificationKind.CHANGES
    assert items(notification) == {
        (ChangeKind.HOST_DISCOVERED, A, None),
        (ChangeKind.HOST_DISCOVERED, B, None),
        (ChangeKind.PORT_OPENED, A, 22),
        (ChangeKind.PORT_OPENED, A, 80),
    }


def test_default_rules_alert_on_approved_closed_and_rejected_open_but_not_unreviewed_closed():
    observe({A: [22, 80, 443]})
    decide(22, Decision.APPROVED)
    decide(80, Decision.REJECTED)
    channel = webhook("http://127.0.0.1:9/")

    observe({A: [443]})  # 22 (approved) and 80 (rejected) close
    assert items(pending(channel).get()) == {(ChangeKind.PORT_CLOSED, A, 22)}

    observe({A: [22, 80, 443]})  # they open again
    assert items(pending(channel).latest("pk")) == {(ChangeKind.PORT_OPENED, A, 80)}


def test_rules_select_by_kind_risk_zone_tag_and_network():
    lab = Zone.objects.create(name="lab")
    observe({A: []})
    observe({B: []}, zone=lab)
    tag = Tag.objects.create(name="pci")
    HostTag.objects.create(host=Host.objects.get(address=A), tag=tag)
    rules = {
        "tagged": AlertRule.objects.create(name="tagged", kinds=[ChangeKind.PORT_OPENED], tag=tag),
        "lab zone": AlertRule.objects.create(name="lab zone", kinds=[ChangeKind.PORT_OPENED], zone=lab),
        "risky": AlertRule.objects.create(name="risky", kinds=[ChangeKind.PORT_OPENED], min_risk=3),
        "network": AlertRule.objects.create(name="network", kinds=[ChangeKind.PORT_OPENED], cidr="127.62.0.2/32"),
    }
    channels = {name: webhook("http://127.0.0.1:9/", name=name, rules=[rule]) for name, rule in rules.items()}

    observe({A: [8080, 6379]})  # 6379 (redis) rates high in the built-in risk table
    observe({B: [8081]}, zone=lab)

    def selected(name):
        return set().union(*(items(n) for n in Notification.objects.filter(channel=channels[name])))

    assert selected("tagged") == {(ChangeKind.PORT_OPENED, A, 8080), (ChangeKind.PORT_OPENED, A, 6379)}
    assert selected("lab zone") == {(ChangeKind.PORT_OPENED, B, 8081)}
    assert selected("risky") == {(ChangeKind.PORT_OPENED, A, 6379)}
    assert selected("network") == {(ChangeKind.PORT_OPENED, B, 8081)}


def test_a_disabled_rule_or_channel_writes_nothing():
    channel = webhook("http://127.0.0.1:9/")
    AlertRule.objects.update(enabled=False)
    observe({A: [22]})
    AlertRule.objects.update(enabled=True)
    Channel.objects.filter(pk=channel.pk).update(enabled=False)
    observe({B: [22]})
    assert not Notification.objects.exists()


def test_a_mute_records_the_changes_as_suppressed_and_sends_nothing(receiver):
    channel = webhook(receiver.url)
    now = timezone.now()
    mute = Mute.objects.create(
        scope=MuteScope.CIDR, cidr="127.62.0.0/31", starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1), reason="patch window",
    )  # fmt: skip
    Mute.objects.create(
        scope=MuteScope.GLOBAL, starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1), reason="over"
    )

    observe({A: [22], B: [22]})  # A is in the muted network, B is not

    suppressed = Notification.objects.get(channel=channel, status=NotificationStatus.SUPPRESSED)
    assert suppressed.suppressed_reason == SuppressReason.MUTED and suppressed.mute == mute
    assert items(suppressed) == {(ChangeKind.HOST_DISCOVERED, A, None), (ChangeKind.PORT_OPENED, A, 22)}
    assert items(pending(channel).get()) == {(ChangeKind.HOST_DISCOVERED, B, None), (ChangeKind.PORT_OPENED, B, 22)}
    delivery.dispatch_due()
    assert len(receiver.requests) == 1
    assert {change["host"]["address"] for change in receiver.requests[0].json()["changes"]} == {B}


@override_settings(FLAP_THRESHOLD=2)
def test_changes_of_a_flapping_port_are_recorded_but_not_sent():
    observe({A: [22]})
    channel = webhook("http://127.0.0.1:9/", rules=[AlertRule.objects.create(name="any port", kinds=[])])
    observe({A: []})  # the second toggle: flapping from now on

    assert Change.objects.get(kind=ChangeKind.PORT_CLOSED).flapping
    suppressed = Notification.objects.get(channel=channel)
    assert suppressed.status == NotificationStatus.SUPPRESSED
    assert suppressed.suppressed_reason == SuppressReason.FLAPPING


def test_a_rolled_back_ingest_writes_no_notification():
    webhook("http://127.0.0.1:9/")

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        observe({A: [22]})
        assert Notification.objects.exists()
        raise Abort
    assert not Notification.objects.exists() and not Change.objects.exists()


def test_a_digest_collects_changes_and_is_sent_once_when_its_window_ends(receiver):
    channel = webhook(receiver.url, mode=DeliveryMode.DIGEST, digest_minutes=15)
    # Windows end on the quarter hour: start well inside one, so both changes join one digest.
    _, end = outbox.digest_window(channel, timezone.now())
    left = end - timezone.now()
    if left < timedelta(seconds=20):
        time.sleep(left.total_seconds() + 0.1)
    observe({A: [22]})
    observe({B: [22]})

    digest = Notification.objects.get(channel=channel)
    assert digest.kind == NotificationKind.DIGEST
    assert digest.next_attempt_at > timezone.now()
    assert delivery.dispatch_due() == 0 and receiver.requests == []

    Notification.objects.filter(pk=digest.pk).update(next_attempt_at=timezone.now())
    assert delivery.dispatch_due() == 1
    payload = receiver.requests[0].json()
    assert payload["type"] == "digest" and payload["total_changes"] == 4
    # Changes after the digest was sent start another one; nothing joins a sent message.
    observe({"127.62.0.3": [22]})
    follow_up = Notification.objects.exclude(pk=digest.pk).get(channel=channel)
    assert items(follow_up) == {
        (ChangeKind.HOST_DISCOVERED, "127.62.0.3", None),
        (ChangeKind.PORT_OPENED, "127.62.0.3", 22),
    }


# --- delivery ------------------------------------------------------------------------------


def test_webhook_receives_signed_json_with_an_idempotency_key_and_the_review_link(receiver):
    channel = webhook(receiver.url)
    observe({A: [(8443, "https-alt", HOSTILE)]}, hostnames={A: [HOSTILE]})
    notification = pending(channel).get()

    assert delivery.dispatch_due() == 1

    request = receiver.requests[0]
    assert request.key == str(notification.public_id)
    expected = hmac.new(
        channel.signing_secret.encode(),
        request.headers["x-portwatch-timestamp"].encode() + b"." + request.body,
        hashlib.sha256,
    ).hexdigest()
    assert request.headers["x-portwatch-signature"] == f"sha256={expected}"
    payload = request.json()
    port = next(change for change in payload["changes"] if change["kind"] == ChangeKind.PORT_OPENED)
    host = Host.objects.get(address=A)
    assert port["url"].endswith(f"/hosts/{host.public_id}/ports/tcp/8443/?decide=1#decide")
    assert port["policy_status"] == PolicyStatus.UNREVIEWED
    assert port["after"]["product"] == HOSTILE  # JSON carries the text as it is, encoded
    notification.refresh_from_db()
    channel.refresh_from_db()
    assert notification.status == NotificationStatus.SENT and channel.last_delivery_at is not None


def test_email_has_plain_text_and_html_with_hostile_text_escaped(smtp):
    channel = Channel.objects.create(name="mail", kind=ChannelKind.EMAIL, target="soc@example.org, noc@example.org")
    channel.rules.set(AlertRule.objects.all())
    observe({A: [(8443, "https-alt", HOSTILE)]}, hostnames={A: [HOSTILE]})

    assert delivery.dispatch_due() == 1

    (message,) = smtp.messages
    assert message["X-Envelope-To"] == "soc@example.org, noc@example.org"
    assert message["Message-ID"].strip().startswith("<") and str(pending_or_sent().public_id) in message["Message-ID"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "\nX-Forged: 1" not in text and "\ufffdX-Forged: 1" in text
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    host = Host.objects.get(address=A)
    assert f"/hosts/{host.public_id}/ports/tcp/8443/" in text and f"/hosts/{host.public_id}/ports/tcp/8443/" in html


def test_an_alerts_link_opens_the_port_on_its_decision_after_login_and_decides_nothing(client, reviewer, viewer):
    from django.conf import settings

    from alerts import messages
    from tests.conftest import PASSWORD

    channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
    channel.rules.set(AlertRule.objects.all())
    observe({A: [8443]})
    message = messages.build(pending(channel).get())
    url = next(line.url for line in message.lines if line.port == 8443)
    path = url.removeprefix(settings.SITE_URL).split("#")[0]  # a browser keeps the fragment to itself
    assert path.endswith("/ports/tcp/8443/?decide=1")

    # Not logged in: the login page, which sends the person back to the same address.
    response = client.get(path)
    assert response.status_code == 302 and "decide%3D1" in response.url
    response = client.post(response.url, {"username": reviewer.username, "password": PASSWORD})
    assert response.status_code == 302 and response.url == path
    page = client.get(path).content.decode()
    assert 'id="decide"' in page and "autofocus" in page  # the decision's first field has the focus
    assert Service.objects.get(port=8443).policy_status == PolicyStatus.UNREVIEWED  # the link decided nothing

    client.force_login(viewer)
    page = client.get(path).content.decode()
    assert "Deciding on this port needs the reviewer role" in page and "autofocus" not in page


def pending_or_sent():
    return Notification.objects.exclude(kind=NotificationKind.TEST).latest("pk")


def test_chat_tools_get_text_with_no_markup_links_pings_or_mentions():
    escaped = chat(HOSTILE)
    for raw in ("<b>", "<!channel>", "@everyone", "[click](http", "*bold*", "\n"):
        assert raw not in escaped
    assert "click" in escaped and "evil" in escaped


def test_apprise_channel_delivers_through_apprise_to_a_loopback_service(receiver):
    channel = Channel.objects.create(
        name="chat", kind=ChannelKind.APPRISE, target=f"json://127.0.0.1:{receiver.port}/hook", allow_private=True
    )
    channel.rules.set(AlertRule.objects.all())
    observe({A: [(8443, "https-alt", HOSTILE)]})

    assert delivery.dispatch_due() == 1

    body = receiver.requests[0].json()
    assert body["title"].startswith("[PortWatch]")
    assert "8443/tcp" in body["message"] and "<!channel>" not in body["message"] and "@everyone" not in body["message"]


def test_a_receiver_that_is_down_gets_every_notification_once_it_is_back(receiver):
    channel = webhook(receiver.url)
    receiver.stop()
    for address in ("127.62.0.1", "127.62.0.2", "127.62.0.3"):
        observe({address: [22]})

    assert delivery.dispatch_due() == 0
    assert pending(channel).count() == 3
    first = pending(channel).first()
    assert first.attempts == 1 and first.next_attempt_at > timezone.now() and "could not connect" in first.last_error
    channel.refresh_from_db()
    assert channel.failure_count == 3 and "could not connect" in channel.last_error

    receiver.start()
    due_now()
    assert delivery.dispatch_due() == 3
    assert sorted(receiver.keys()) == sorted(str(n.public_id) for n in Notification.objects.filter(channel=channel))
    assert delivery.dispatch_due() == 0 and len(receiver.requests) == 3


def test_an_error_answer_is_retried_with_back_off_and_the_key_stays_the_same(receiver):
    receiver.mode = "503"
    webhook(receiver.url)
    observe({A: [22]})
    delivery.dispatch_due()
    notification = pending().get()
    assert "HTTP 503" in notification.last_error and "receiver says no" in notification.last_error
    waited = notification.next_attempt_at - timezone.now()
    assert timedelta(seconds=20) < waited <= timedelta(seconds=30)

    receiver.mode = "ok"
    due_now()
    delivery.dispatch_due()
    assert receiver.keys() == [str(notification.public_id)] * 2  # at least once, one idempotency key
    assert delivery.backoff(3) == 4 * delivery.backoff(1)


@override_settings(ALERT_MAX_ATTEMPTS=2)
def test_exhausted_retries_land_in_the_failed_list_and_retry_sends_again(receiver):
    receiver.mode = "503"
    webhook(receiver.url)
    observe({A: [22]})
    delivery.dispatch_due()
    due_now()
    delivery.dispatch_due()

    failed = Notification.objects.get(status=NotificationStatus.FAILED)
    assert "gave up after 2 attempts" in failed.last_error

    receiver.mode = "ok"
    assert delivery.retry(failed)
    assert delivery.dispatch_due() == 1
    failed.refresh_from_db()
    assert failed.status == NotificationStatus.SENT


def test_a_4xx_answer_fails_at_once(receiver):
    receiver.mode = "400"
    webhook(receiver.url)
    observe({A: [22]})
    delivery.dispatch_due()
    failed = Notification.objects.get()
    assert failed.status == NotificationStatus.FAILED and failed.attempts == 1
    assert "HTTP 400" in failed.last_error


@pytest.mark.parametrize(
    ("url", "allow_private", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", True, "cloud-metadata"),
        ("http://[::ffff:169.254.169.254]/latest/", True, "cloud-metadata"),
        ("http://[fe80::1]/", True, "link-local"),
        ("http://100.100.100.200/", True, "cloud-metadata"),
        ("http://127.0.0.1:9/", False, "an admin must allow private addresses"),
        ("http://198.18.0.5/", False, "an admin must allow private addresses"),
        ("http://0.0.0.0/", True, "not a unicast address"),
        ("ftp://127.0.0.1/", True, "must start with http"),
    ],
)
def test_webhooks_are_never_sent_to_metadata_link_local_or_unallowed_private_addresses(url, allow_private, reason):
    webhook(url, allow_private=allow_private)
    observe({A: [22]})
    delivery.dispatch_due()
    failed = Notification.objects.get()
    assert failed.status == NotificationStatus.FAILED and reason in failed.last_error


def test_a_redirect_is_not_followed(receiver):
    receiver.mode = "redirect"
    webhook(receiver.url)
    observe({A: [22]})
    delivery.dispatch_due()
    failed = Notification.objects.get()
    assert failed.status == NotificationStatus.FAILED
    assert "302 redirect" in failed.last_error and "do not follow redirects" in failed.last_error
    assert len(receiver.requests) == 1  # nothing went to the Location


@override_settings(ALERT_WEBHOOK_READ_TIMEOUT=1)
def test_a_receiver_that_never_answers_times_out_and_is_retried(receiver):
    receiver.mode = "hang"
    webhook(receiver.url)
    observe({A: [22]})
    delivery.dispatch_due()
    notification = Notification.objects.get()
    assert notification.status == NotificationStatus.PENDING and "timed out" in notification.last_error


def test_a_claim_whose_worker_died_is_sent_again(receiver):
    webhook(receiver.url)
    observe({A: [22]})
    notification = Notification.objects.get()
    long_ago = timezone.now() - timedelta(hours=1)
    Notification.objects.filter(pk=notification.pk).update(status=NotificationStatus.SENDING, claimed_at=long_ago)

    assert delivery.dispatch_due() == 1
    assert receiver.keys() == [str(notification.public_id)]


def test_a_claimed_notification_is_not_sent_twice(receiver):
    webhook(receiver.url)
    observe({A: [22]})
    notification = Notification.objects.get()
    assert delivery.deliver(notification.pk) == NotificationStatus.SENT
    assert delivery.deliver(notification.pk) is None
    assert len(receiver.requests) == 1


def test_a_test_message_goes_through_the_outbox(receiver):
    channel = webhook(receiver.url)
    notification = delivery.send_test(channel)
    assert delivery.dispatch_due() == 1
    assert receiver.requests[0].json()["type"] == "test"
    assert receiver.keys() == [str(notification.public_id)]


def test_the_outbox_write_is_idempotent_per_chunk_and_channel():
    channel = webhook("http://127.0.0.1:9/")
    run = observe({A: [22]})
    changes = Change.objects.filter(run=run)
    chunk_id = changes.first().chunk_id
    outbox.write(changes, key=f"chunk-{chunk_id}", chunk_id=chunk_id)
    assert Notification.objects.filter(channel=channel).count() == 1
    assert Notification.objects.get().items.count() == 2


def test_the_log_channel_appends_a_json_line(tmp_path):
    log = tmp_path / "alerts.log"
    channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
    channel.rules.set(AlertRule.objects.all())
    observe({A: [22]})
    with override_settings(ALERT_LOG_FILE=log):
        delivery.dispatch_due()
        assert channel.masked_target == str(log)  # the channel pages show where it writes
    (line,) = log.read_text().splitlines()
    assert {change["kind"] for change in json.loads(line)["changes"]} == {"host_discovered", "port_opened"}
    assert Service.objects.get(port=22).policy_status == PolicyStatus.UNREVIEWED


def test_a_channel_name_cannot_forge_an_email_header(smtp):
    channel = Channel.objects.create(
        name="soc\r\nBcc: attacker@example.org", kind=ChannelKind.EMAIL, target="soc@example.org"
    )
    delivery.send_test(channel)
    assert delivery.dispatch_due() == 1
    (message,) = smtp.messages
    assert message["Bcc"] is None and message["X-Envelope-To"] == "soc@example.org"
    assert "Bcc: attacker" in message["Subject"]  # kept as text, on the subject line
