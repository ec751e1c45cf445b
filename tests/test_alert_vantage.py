"""Alert rules and vantage points: where a change was seen from decides whether it alerts.

The built-in host rules hold to the zone's home vantage point (a host that
stops answering office-lan is usually good news); any rule may name vantage
points; segmentation violations reach the outbox like every other change,
whether a scan or a rule made them, and their messages say where from.
"""

import pytest
from django.db import transaction

from alerts import messages, outbox
from alerts.choices import ChannelKind, NotificationStatus
from alerts.models import AlertRule, Channel, Notification
from inventory.choices import RuleScope
from inventory.models import Zone
from inventory.ports import PortSet
from reach import segmentation
from reach.models import SegmentationRule, VantagePoint
from reach.segmentation_choices import SegmentationMode
from scans.choices import ChangeKind as K
from scans.models import Change
from tests.factories import scan

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

A = "198.18.41.1"
ALL_PORTS = {"tcp": PortSet.parse("1-65535")}


@pytest.fixture
def office():
    return VantagePoint.objects.create(name="office-lan")


def selected(rule_name: str) -> set:
    rule = AlertRule.objects.get(name=rule_name)
    return {
        (c.kind, c.vantage.name) for c in Change.objects.filter(outbox.rule_condition(rule)).select_related("vantage")
    }


def test_the_built_in_host_rules_alert_on_what_the_zones_home_sees_only(office):
    home = Zone.default().home_vantage.name
    scan(None, {A: {22: "open"}})
    scan(office, {A: {22: "open"}})
    scan(office, {}, silent=[A])
    assert Change.objects.filter(kind=K.HOST_UNREACHABLE, vantage=office).exists()
    assert selected("Host unreachable") == set()
    scan(None, {}, silent=[A])
    assert selected("Host unreachable") == {(K.HOST_UNREACHABLE, home)}
    # A host first seen from elsewhere is new to the inventory: still not the home's discovery.
    scan(office, {"198.18.41.2": {80: "open"}})
    assert selected("Host discovered") == {(K.HOST_DISCOVERED, home)}
    assert AlertRule.objects.get(name="Host unreachable").home_only


def test_a_rule_may_name_vantage_points_and_the_home(office):
    dmz = VantagePoint.objects.create(name="dmz")
    rule = AlertRule.objects.create(name="exposures", kinds=[K.EXPOSURE_OPENED, K.PORT_OPENED])
    scan(None, {A: {22: "open"}})
    scan(office, {A: {22: "open"}})
    scan(dmz, {A: {22: "open"}})
    home = Zone.default().home_vantage.name
    assert selected("exposures") == {
        (K.PORT_OPENED, home),
        (K.EXPOSURE_OPENED, "office-lan"),
        (K.EXPOSURE_OPENED, "dmz"),
    }
    rule.vantage_points.set([office])
    assert selected("exposures") == {(K.EXPOSURE_OPENED, "office-lan")}
    rule.home_only = True
    rule.save()
    assert selected("exposures") == {(K.PORT_OPENED, home), (K.EXPOSURE_OPENED, "office-lan")}
    rule.vantage_points.clear()
    assert selected("exposures") == {(K.PORT_OPENED, home)}


def test_a_violation_a_scan_finds_is_sent_once_saying_where_from(office):
    channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
    channel.rules.set(AlertRule.objects.filter(name="Segmentation violated"))
    with transaction.atomic():
        rule = SegmentationRule.objects.create(
            scope=RuleScope.GLOBAL, protocol="tcp", port_start=5432, port_end=5432, mode=SegmentationMode.DENY,
            justification="no databases from the office",
        )  # fmt: skip
        rule.vantage_points.set([office])
        segmentation.rule_changed(None, rule)
    scan(office, {A: {5432: "open"}}, probed=ALL_PORTS)
    notification = Notification.objects.get(channel=channel)
    assert set(notification.changes.values_list("kind", flat=True)) == {K.SEGMENTATION_VIOLATED}
    message = messages.build(notification)
    assert message.subject == f"[PortWatch] {A} 5432/tcp segmentation violated from office-lan"
    line = message.as_json()["changes"][0]
    assert (line["vantage"], line["after"]["mode"]) == ("office-lan", "deny")
    assert "from office-lan" in message.render("email_body.txt")


def test_violations_a_rule_change_makes_are_announced_once_under_their_own_key(office):
    channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
    channel.rules.set(AlertRule.objects.filter(name="Segmentation violated"))
    scan(office, {A: {5432: "open", 6379: "open"}}, probed=ALL_PORTS)
    assert not Notification.objects.exists()
    with transaction.atomic():
        rule = SegmentationRule.objects.create(
            scope=RuleScope.GLOBAL, protocol="tcp", port_start=1, port_end=65535, mode=SegmentationMode.DENY,
            justification="nothing from the office",
        )  # fmt: skip
        rule.vantage_points.set([office])
        segmentation.rule_changed(None, rule)
    notification = Notification.objects.get(channel=channel)
    assert notification.status == NotificationStatus.PENDING and notification.dedupe_key.startswith("segmentation-")
    assert set(notification.changes.values_list("port", "run")) == {(5432, None), (6379, None)}
    assert messages.build(notification).as_json()["changes"][0]["run"] is None
    # Re-evaluating again finds nothing new: nothing more is sent.
    with transaction.atomic():
        segmentation.rule_changed(rule)
    assert Notification.objects.count() == 1
