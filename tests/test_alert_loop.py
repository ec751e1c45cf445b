"""The whole loop through real processes: scan -> change -> outbox -> Celery -> receivers.

A central worker scans the loopback lab, a delivery worker (``run_worker
--alerts``) sends what the outbox holds to a real SMTP server and a real
webhook receiver in this process. The broker being down when the changes
commit loses nothing: the periodic dispatch sends the notification later.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from alerts.choices import ChannelKind, NotificationStatus
from alerts.models import AlertRule, Channel, Notification
from alerts.tasks import dispatch
from inventory.models import Zone
from scans.choices import ChangeKind
from scans.models import ScanProfile, ScanRun, ScanTarget
from tests.conftest import ROOT, WorkerProcess, process_env, wait_for
from tests.lab import LAB_PORT_SPEC
from tests.receivers import SmtpSink, WebhookReceiver
from tests.stack import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.lab]

FIXTURE = Path(__file__).parent / "fixtures" / "nmap" / "lab_two_hosts_versions.xml"


@pytest.fixture
def receivers():
    hook, smtp = WebhookReceiver(), SmtpSink()
    yield hook, smtp
    hook.stop()
    smtp.stop()


@pytest.fixture
def channels(receivers):
    hook, _ = receivers
    rules = AlertRule.objects.filter(built_in=True)
    webhook = Channel.objects.create(name="soc hook", kind=ChannelKind.WEBHOOK, target=hook.url, allow_private=True)
    mail = Channel.objects.create(name="soc mail", kind=ChannelKind.EMAIL, target="soc@example.org")
    for channel in (webhook, mail):
        channel.rules.set(rules)
    return webhook, mail


def alerts_worker(tmp_path, smtp) -> WorkerProcess:
    # LOG_LEVEL=DEBUG: its log shows every task received and done, which the test reads.
    return WorkerProcess(
        tmp_path / "alerts.log", "--alerts", EMAIL_HOST="127.0.0.1", EMAIL_PORT=smtp.port, LOG_LEVEL="DEBUG"
    )


def test_a_scan_that_opens_ports_alerts_by_webhook_and_email(
    celery_worker, lab, admin, client, tmp_path, receivers, channels
):
    hook, smtp = receivers
    delivery_worker = alerts_worker(tmp_path, smtp)
    lab.open(1, 41022)
    lab.open(2, 41080)
    target = ScanTarget.objects.create(
        name="lab",
        zone=Zone.default(),
        targets=f"{lab.address(1)}\n{lab.address(2)}",
        ports=LAB_PORT_SPEC,
        profile=ScanProfile.objects.get(slug="quick"),
    )
    client.force_login(admin)
    try:
        client.post(reverse("target-scan", args=[target.public_id]))

        # Until the worker has recorded both deliveries, not just made them:
        # a receiver has the message a moment before its row says SENT.
        wait_for(
            lambda: (
                hook.requests
                and smtp.messages
                and not Notification.objects.exclude(status=NotificationStatus.SENT).exists()
            ),
            90,
            message=f"alerts; log:\n{delivery_worker.log()}",
        )
    finally:
        delivery_worker.stop()

    run = ScanRun.objects.get(target=target)
    (request,) = hook.requests
    payload = request.json()
    opened = {(c["host"]["address"], c["port"]) for c in payload["changes"] if c["kind"] == ChangeKind.PORT_OPENED}
    assert opened == lab.expected()
    assert {c["run"] for c in payload["changes"]} == {str(run.public_id)}
    assert all(c["policy_status"] == "unreviewed" for c in payload["changes"] if c["port"])
    (message,) = smtp.messages
    assert "41080/tcp" in message.get_body(("plain",)).get_content()
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.SENT}
    assert request.key in {str(key) for key in Notification.objects.values_list("public_id", flat=True)}


def test_a_broker_that_is_down_at_commit_loses_no_alert(tmp_path, receivers, channels):
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    hook, smtp = receivers
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"

    # The import commits its changes and their notifications; telling the
    # delivery queue fails, and must not fail the import.
    result = subprocess.run(
        [sys.executable, "manage.py", "import_nmap", str(FIXTURE)],
        cwd=ROOT,
        env=process_env(REDIS_URL=dead_broker),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "could not reach the broker" in result.stderr
    assert Notification.objects.filter(status=NotificationStatus.PENDING).count() == 2
    assert hook.requests == []

    # The broker is back: the periodic dispatch (beat's task) finds the rows.
    worker = alerts_worker(tmp_path, smtp)
    try:
        dispatch.apply_async()
        wait_for(lambda: hook.requests and smtp.messages, 60, message=f"delivery; log:\n{worker.log()}")
        dispatch.apply_async()  # a second sweep finds nothing left to send
        wait_for(lambda: "alerts.tasks.dispatch" in worker.log() and worker.log().count("succeeded") >= 2, 30)
    finally:
        worker.stop()
    assert len(hook.requests) == 1 and len(smtp.messages) == 1
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.SENT}
