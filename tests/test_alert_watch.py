"""A vantage point's workers going silent, and coming back, alert through the channels and rules (alerts.watch).

The workers here are their heartbeat rows, as a real worker writes them
(scans.worker); tests/test_vantage_liveness.py has real workers stop and die.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts import delivery, watch
from alerts.choices import ChannelKind, MuteScope, NotificationKind, NotificationStatus, WorkerEvent
from alerts.models import AlertRule, Channel, Mute, Notification
from inventory.models import Tag, Zone
from reach.models import VantagePoint
from scans.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def dmz(db):
    """A zone whose home vantage point has one worker, alive now."""
    zone = Zone.objects.create(name="dmz")
    vantage = VantagePoint.objects.get(home_of=zone)
    WorkerHeartbeat.objects.create(name="zone-dmz@scanner-1", queues=[vantage.queue])
    return vantage


def channel_for(receiver, rules=None) -> Channel:
    channel = Channel.objects.create(name="oncall", kind=ChannelKind.WEBHOOK, target=receiver.url, allow_private=True)
    channel.rules.set(rules if rules is not None else AlertRule.objects.filter(built_in=True))
    return channel


def silence(vantage, minutes=30):
    WorkerHeartbeat.objects.filter(queues__contains=[vantage.queue]).update(
        seen_at=timezone.now() - timedelta(minutes=minutes)
    )


def test_workers_falling_silent_and_coming_back_alert_once_each(dmz, receiver):
    channel_for(receiver)
    assert watch.watch() == 0  # the first look only records what it sees
    assert watch.watch() == 0

    silence(dmz)
    assert watch.watch() == 1
    assert watch.watch() == 0  # still silent: said once
    (silent,) = Notification.objects.filter(kind=NotificationKind.WORKERS)
    assert silent.status == NotificationStatus.PENDING
    assert delivery.dispatch_due() == 1
    payload = receiver.requests[-1].json()
    assert payload["type"] == "workers" and payload["changes"] == []
    assert payload["event"]["kind"] == WorkerEvent.SILENT and payload["event"]["vantage"] == "dmz"
    assert payload["summary"] == "Vantage point dmz: workers went silent"

    WorkerHeartbeat.objects.update(seen_at=timezone.now())  # the worker is back
    assert watch.watch() == 1
    assert delivery.dispatch_due() == 1
    back = receiver.requests[-1].json()
    assert back["event"]["kind"] == WorkerEvent.BACK and back["event"]["workers"] == ["zone-dmz@scanner-1"]


def test_a_vantage_point_that_never_had_a_worker_is_not_an_alert(receiver):
    channel_for(receiver)
    VantagePoint.objects.create(name="office-lan")
    watch.watch()
    watch.watch()
    assert not Notification.objects.filter(kind=NotificationKind.WORKERS).exists()


def test_only_rules_that_ask_for_it_and_not_about_ports_select_it(dmz, receiver):
    about_ports = AlertRule.objects.create(name="redis anywhere", kinds=[], tag=Tag.objects.create(name="db"))
    other_zone = AlertRule.objects.create(name="dc1 only", kinds=[WorkerEvent.SILENT], zone=Zone.default())
    channel_for(receiver, rules=[about_ports, other_zone])
    watch.watch()
    silence(dmz)
    assert watch.watch() == 1  # the event happened (and is recorded by the watch)...
    assert not Notification.objects.filter(kind=NotificationKind.WORKERS).exists()  # ...but no rule asked for it

    this_zone = AlertRule.objects.create(name="dmz workers", kinds=[WorkerEvent.BACK], zone=dmz.home_of)
    Channel.objects.get().rules.add(this_zone)
    WorkerHeartbeat.objects.update(seen_at=timezone.now())
    assert watch.watch() == 1
    assert Notification.objects.get(kind=NotificationKind.WORKERS).event["kind"] == WorkerEvent.BACK


def test_a_maintenance_window_records_the_alert_as_muted(dmz, receiver):
    channel_for(receiver)
    watch.watch()
    Mute.objects.create(
        scope=MuteScope.ZONE, zone=dmz.home_of, ends_at=timezone.now() + timedelta(hours=1), reason="rack move"
    )
    silence(dmz)
    assert watch.watch() == 1
    muted = Notification.objects.get(kind=NotificationKind.WORKERS)
    assert muted.status == NotificationStatus.SUPPRESSED and muted.mute.reason == "rack move"
    assert delivery.dispatch_due() == 0 and receiver.requests == []


def test_the_notifications_page_says_what_happened(dmz, receiver, as_viewer):
    channel_for(receiver)
    watch.watch()
    silence(dmz)
    watch.watch()
    page = as_viewer.get("/alerts/").content.decode()
    assert "Vantage point dmz: workers went silent" in page
    detail = as_viewer.get(Notification.objects.get().get_absolute_url()).content.decode()
    assert "What happened" in detail and "silent since" in detail
