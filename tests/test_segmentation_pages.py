"""Segmentation rules and violations through the pages: validated, audited, applied, escaped.

Admins write rules; reviewers and viewers read them (the full role matrix
is in tests/test_access.py).
"""

import pytest
from django.urls import reverse

from inventory.models import AuditEntry, Host, Zone
from inventory.ports import PortSet
from reach.models import SegmentationRule, SegmentationViolation, VantagePoint
from reach.tasks import settle_segmentation_rules
from scans.models import Change
from tests.factories import scan

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

A, B = "198.18.42.1", "198.18.42.2"
ALL_PORTS = {"tcp": PortSet.parse("1-65535")}
HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def office():
    return VantagePoint.objects.create(name="office-lan")


@pytest.fixture
def app():
    return VantagePoint.objects.create(name="dc1-app")


def work() -> None:
    """What a worker does when a save nudges it (or beat's periodic task)."""
    settle_segmentation_rules.apply()


def rule_form(vantages, **fields):
    data = {
        "mode": "deny",
        "vantage_points": [str(vantage.pk) for vantage in vantages],
        "scope": "global",
        "protocol": "tcp",
        "port_start": "5432",
        "justification": "no databases from the office",
    }
    data.update(fields)
    return data


def test_an_admin_writes_a_rule_and_its_violations_follow(client, admin, office):
    client.force_login(admin)
    scan(office, {A: {5432: "open"}, B: {5432: "open", 443: "open"}}, probed=ALL_PORTS)
    response = client.post(
        reverse("segmentation-rule-create"), rule_form([office], scope="cidr", cidr="198.18.42.1/32")
    )
    rule = SegmentationRule.objects.get()
    assert response.status_code == 302 and response.url == rule.get_absolute_url()
    entry = AuditEntry.objects.get(action="segmentation.create", object_id=str(rule.pk))
    assert entry.after["vantage_points"] == ["office-lan"] and entry.after["mode"] == "deny"
    # Saved and audited at once; the violations are a worker's job, and the pages say it is not done.
    assert not SegmentationViolation.objects.exists()
    page = client.get(rule.get_absolute_url()).content.decode()
    assert "A worker is working out this rule's violations" in page
    assert "being worked out" in client.get(reverse("segmentation-rule-list")).content.decode()
    work()
    assert set(SegmentationViolation.objects.values_list("host__address", "port")) == {(A, 5432)}
    page = client.get(rule.get_absolute_url()).content.decode()
    assert "Its violations (1)" in page and A in page and "A worker is working out" not in page

    # Edited to a network holding both hosts: B's port becomes a violation too.
    response = client.post(
        reverse("segmentation-rule-edit", args=[rule.public_id]),
        rule_form([office], scope="cidr", cidr="198.18.42.0/24", justification="still no databases"),
    )
    assert response.status_code == 302
    work()
    assert set(SegmentationViolation.objects.values_list("host__address", "port")) == {(A, 5432), (B, 5432)}
    update = AuditEntry.objects.get(action="segmentation.update")
    assert (update.before["cidr"], update.after["cidr"]) == ("198.18.42.1/32", "198.18.42.0/24")

    listing = client.get(reverse("segmentation-rule-list")).content.decode()
    assert f'?rule={rule.public_id}">2</a>' in listing and "5432/tcp" in listing

    # Removed: hidden and governing nothing at once; a worker ends its violations (each recorded as
    # kept) and deletes it.
    response = client.post(reverse("segmentation-rule-delete", args=[rule.public_id]))
    assert response.status_code == 302
    assert client.get(rule.get_absolute_url()).status_code == 404
    assert rule.get_absolute_url() not in client.get(reverse("segmentation-rule-list")).content.decode()
    work()
    assert not SegmentationRule.objects.exists() and not SegmentationViolation.objects.exists()
    assert Change.objects.filter(kind="segmentation_kept").count() == 2
    assert AuditEntry.objects.filter(action="segmentation.delete").exists()
    # The changes feed says which rule mode and from where; a rule's changes have no run.
    feed = client.get(reverse("change-list"), {"kind": "segmentation_kept"}).content.decode()
    assert '<span class="badge">deny</span> from office-lan' in feed and "a rule" in feed


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"scope": "cidr", "cidr": "10.0.0.300/8"}, "cidr", "is not a network"),
        ({"scope": "cidr"}, "cidr", "Required for this scope"),
        ({"scope": "zone"}, "zone", "Required for this scope"),
        ({"scope": "tag", "tag": "nope"}, "tag", "Select a valid choice"),
        ({"scope": "host", "host_address": "198.18.42.99"}, "host_address", "No known host 198.18.42.99"),
        ({"port_start": "0"}, "port_start", "greater than or equal to 1"),
        ({"port_start": "70000"}, "port_start", "less than or equal to 65535"),
        ({"port_start": "900", "port_end": "800"}, "port_end", "The last port comes before the first"),
        ({"justification": "  "}, "justification", "required"),
        ({"ticket": "javascript:alert(1)"}, "ticket", "Enter a valid URL"),
        ({"mode": "sometimes"}, "mode", "Select a valid choice"),
        ({"vantage_points": []}, "vantage_points", "Choose at least one vantage point"),
        ({"mode": "only", "vantage_points": []}, "vantage_points", "A reachable-only-from rule needs the vantage"),
        ({"vantage_points": ["999999"]}, "vantage_points", "Select a valid choice"),
    ],
)
def test_bad_input_is_refused_field_by_field_and_writes_nothing(client, admin, office, fields, field, message):
    client.force_login(admin)
    scan(office, {A: {5432: "open"}}, probed=ALL_PORTS)
    data = rule_form([office])
    data.update(fields)
    response = client.post(reverse("segmentation-rule-create"), data)
    assert response.status_code == 200
    errors = response.context["form"].errors.get(field, [])
    assert any(message in error for error in errors), response.context["form"].errors
    assert not SegmentationRule.objects.exists() and not SegmentationViolation.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="segmentation").exists()
    assert message.split(" ")[0] in response.content.decode()


def test_a_bad_edit_changes_nothing(client, admin, office):
    client.force_login(admin)
    client.post(reverse("segmentation-rule-create"), rule_form([office]))
    rule = SegmentationRule.objects.get()
    response = client.post(
        reverse("segmentation-rule-edit", args=[rule.public_id]), rule_form([], mode="only", port_start="1")
    )
    assert response.status_code == 200
    rule.refresh_from_db()
    assert (rule.mode, rule.port_start, rule.vantage_names) == ("deny", 5432, ["office-lan"])
    assert not AuditEntry.objects.filter(action="segmentation.update").exists()


def test_the_violations_list_pages_by_keyset_and_filters_by_vantage_point(client, viewer, office, app):
    client.force_login(viewer)
    rule = SegmentationRule.objects.create(
        scope="global", protocol="tcp", port_start=1, port_end=65535, mode="deny", justification="x"
    )
    rule.vantage_points.set([office, app])
    from reach import segmentation

    segmentation.rule_changed(rule)
    hosts = {f"198.18.43.{n}": {22: "open"} for n in range(1, 56)}
    scan(office, hosts, probed=ALL_PORTS)
    scan(app, {"198.18.43.1": {22: "open"}}, probed=ALL_PORTS)
    assert SegmentationViolation.objects.count() == 56
    first = client.get(reverse("segmentation-violation-list"))
    assert first.status_code == 200 and len(first.context["page"].object_list) == 50
    assert first.context["page"].has_next
    second = client.get(reverse("segmentation-violation-list"), {"cursor": first.context["page"].next_cursor})
    assert len(second.context["page"].object_list) == 6
    shown = {v.pk for v in first.context["page"].object_list} | {v.pk for v in second.context["page"].object_list}
    assert shown == set(SegmentationViolation.objects.values_list("pk", flat=True))
    from_app = client.get(reverse("segmentation-violation-list"), {"vantage": "dc1-app"})
    assert [v.vantage.name for v in from_app.context["page"].object_list] == ["dc1-app"]
    by_rule = client.get(reverse("segmentation-violation-list"), {"rule": str(rule.public_id)})
    assert len(by_rule.context["page"].object_list) == 50
    export = client.get(reverse("segmentation-violation-list"), {"format": "csv", "vantage": "dc1-app"})
    body = b"".join(export.streaming_content).decode()
    assert export.status_code == 200 and "198.18.43.1,default,,tcp,22,dc1-app" in body.replace('"', "")


def test_text_from_scanned_hosts_is_escaped_on_every_page(client, viewer, office):
    client.force_login(viewer)
    rule = SegmentationRule.objects.create(
        scope="global", protocol="tcp", port_start=5432, port_end=5432, mode="deny", justification=HOSTILE,
        owner=HOSTILE,
    )  # fmt: skip
    rule.vantage_points.set([office])
    scan(office, {A: {5432: "open"}}, probed=ALL_PORTS)
    Host.objects.filter(address=A).update(hostnames=[HOSTILE])
    for url in (
        reverse("segmentation-rule-list"),
        rule.get_absolute_url(),
        reverse("segmentation-violation-list"),
    ):
        page = client.get(url).content.decode()
        assert "<script>alert" not in page, url
    assert "&lt;script&gt;" in client.get(reverse("segmentation-violation-list")).content.decode()
    assert "&lt;script&gt;" in client.get(rule.get_absolute_url()).content.decode()


def test_readers_see_no_write_buttons(client, viewer, reviewer, admin, office):
    rule = SegmentationRule.objects.create(
        scope="global", protocol="tcp", port_start=22, port_end=22, mode="deny", justification="x"
    )
    rule.vantage_points.set([office])
    for user, sees in ((viewer, False), (reviewer, False), (admin, True)):
        client.force_login(user)
        listing = client.get(reverse("segmentation-rule-list")).content.decode()
        detail = client.get(rule.get_absolute_url()).content.decode()
        assert (reverse("segmentation-rule-create") in listing) is sees
        assert (reverse("segmentation-rule-edit", args=[rule.public_id]) in detail) is sees


def test_a_vantage_point_a_rule_names_cannot_be_deleted(office):
    from django.db.models import ProtectedError

    rule = SegmentationRule.objects.create(
        scope="global", protocol="tcp", port_start=22, port_end=22, mode="only", justification="x"
    )
    rule.vantage_points.set([office])
    with pytest.raises(ProtectedError):
        office.delete()


def test_a_zone_rule_names_its_zone_and_the_pages_link_the_violations(client, admin, office):
    client.force_login(admin)
    dc1 = Zone.objects.create(name="dc1")
    scan(office, {A: {5432: "open"}}, probed=ALL_PORTS, zone=dc1)
    client.post(reverse("segmentation-rule-create"), rule_form([office], scope="zone", zone=str(dc1.pk)))
    work()
    rule = SegmentationRule.objects.get()
    assert rule.scope_label == "zone dc1"
    listing = client.get(reverse("segmentation-rule-list")).content.decode()
    assert f"?rule={rule.public_id}" in listing


def test_violation_counts_stop_at_the_cap(client, viewer, office, monkeypatch):
    from reach import segmentation

    monkeypatch.setattr(segmentation, "COUNT_CAP", 1)
    client.force_login(viewer)
    rule = SegmentationRule.objects.create(
        scope="global", protocol="tcp", port_start=22, port_end=22, mode="deny", justification="x"
    )
    rule.vantage_points.set([office])
    scan(office, {A: {22: "open"}, B: {22: "open"}}, probed=ALL_PORTS)
    assert rule.violations.count() == 2
    assert f'?rule={rule.public_id}">1+</a>' in client.get(reverse("segmentation-rule-list")).content.decode()
    assert "Its violations (1+)" in client.get(rule.get_absolute_url()).content.decode()
