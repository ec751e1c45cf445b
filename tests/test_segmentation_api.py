"""The segmentation API: rules written by admins as on the pages (same form, audit and re-evaluation),
violations listed with the page's filters. Roles: tests/test_api_access.py."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inventory.models import AuditEntry
from inventory.ports import PortSet
from portwatch.roles import Role
from reach.models import SegmentationRule, SegmentationViolation, VantagePoint
from reach.tasks import settle_segmentation_rules
from tests.conftest import make_user
from tests.factories import scan

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

A = "198.18.44.1"
ALL_PORTS = {"tcp": PortSet.parse("1-65535")}
RULES, VIOLATIONS = "/api/segmentation-rules/", "/api/segmentation-violations/"


def api(role) -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=make_user(f"api-{role.label}", role))
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def office():
    return VantagePoint.objects.create(name="office-lan")


@pytest.fixture
def app():
    return VantagePoint.objects.create(name="dc1-app")


def test_an_admin_creates_edits_and_deletes_a_rule_and_violations_follow(office, app):
    scan(office, {A: {5432: "open"}}, probed=ALL_PORTS)
    scan(app, {A: {5432: "open"}}, probed=ALL_PORTS)
    admin = api(Role.ADMIN)
    body = {
        "mode": "only",
        "vantage_points": ["dc1-app"],
        "scope": "cidr",
        "cidr": "198.18.44.0/24",
        "port_start": 5432,
        "justification": "databases from the app tier only",
    }
    created = admin.post(RULES, body, format="json")
    assert created.status_code == 201, created.json()
    rule = created.json()
    # Saved and audited; a worker works out its violations after the response.
    assert (rule["port_end"], rule["vantage_points"], rule["judging"]) == (5432, ["dc1-app"], True)
    assert AuditEntry.objects.filter(action="segmentation.create").exists()
    settle_segmentation_rules.apply()
    rule = admin.get(f"{RULES}{rule['id']}/").json()
    assert (rule["violations"], rule["judging"]) == (1, False)

    violations = admin.get(VIOLATIONS).json()["results"]
    assert [(v["host"]["address"], v["port"], v["vantage"], v["rule"], v["mode"]) for v in violations] == [
        (A, 5432, "office-lan", rule["id"], "only")
    ]

    patched = admin.patch(f"{RULES}{rule['id']}/", {"vantage_points": ["dc1-app", "office-lan"]}, format="json")
    assert patched.status_code == 200 and patched.json()["judging"]
    settle_segmentation_rules.apply()
    assert not SegmentationViolation.objects.exists()
    # The home of the default zone reaching it would be a violation: nothing scanned from there.
    listed = admin.get(RULES, {"vantage": "office-lan"}).json()["results"]
    assert [item["id"] for item in listed] == [rule["id"]] and listed[0]["violations"] == 0

    assert admin.delete(f"{RULES}{rule['id']}/").status_code == 204
    # Gone from the API at once (a second delete is a 404), deleted by a worker.
    assert admin.delete(f"{RULES}{rule['id']}/").status_code == 404
    assert AuditEntry.objects.filter(action="segmentation.delete").count() == 1
    settle_segmentation_rules.apply()
    assert not SegmentationRule.objects.exists()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"vantage_points": []}, "vantage_points", "Choose at least one vantage point"),
        ({"mode": "only", "vantage_points": []}, "vantage_points", "A reachable-only-from rule"),
        ({"vantage_points": ["nowhere"]}, "vantage_points", "Select a valid choice"),
        ({"scope": "cidr", "cidr": "10.0.0.0/33"}, "cidr", "is not a network"),
        ({"port_start": 70000}, "port_start", "less than or equal to 65535"),
        ({"port_start": 900, "port_end": 800}, "port_end", "The last port comes before the first"),
        ({"scope": "zone", "zone": "atlantis"}, "zone", "Select a valid choice"),
    ],
)
def test_bad_input_gets_the_pages_errors_and_writes_nothing(office, change, field, message):
    body = {"mode": "deny", "vantage_points": ["office-lan"], "scope": "global", "port_start": 22, "justification": "x"}
    body.update(change)
    response = api(Role.ADMIN).post(RULES, body, format="json")
    assert response.status_code == 400
    assert any(message in error for error in response.json()[field]), response.json()
    assert not SegmentationRule.objects.exists() and not AuditEntry.objects.filter(action__startswith="seg").exists()


def test_violations_are_filtered_by_vantage_point_and_paged_by_cursor(office, app):
    rule = SegmentationRule.objects.create(
        scope="global", protocol="tcp", port_start=22, port_end=22, mode="deny", justification="x"
    )
    rule.vantage_points.set([office, app])
    scan(office, {f"198.18.44.{n}": {22: "open"} for n in range(1, 4)}, probed=ALL_PORTS)
    scan(app, {A: {22: "open"}}, probed=ALL_PORTS)
    viewer = api(Role.VIEWER)
    assert len(viewer.get(VIOLATIONS).json()["results"]) == 4
    assert [v["vantage"] for v in viewer.get(VIOLATIONS, {"vantage": "dc1-app"}).json()["results"]] == ["dc1-app"]
    first = viewer.get(VIOLATIONS, {"page_size": 3}).json()
    assert len(first["results"]) == 3 and first["next"]
    assert len(viewer.get(first["next"]).json()["results"]) == 1
    assert viewer.get(VIOLATIONS, {"vantage": "nowhere"}).status_code == 400
    assert viewer.post(RULES, {}, format="json").status_code == 403


@pytest.mark.parametrize("method", ["patch", "put", "delete"])
def test_a_rule_deleted_by_someone_else_meanwhile_is_a_404_and_stays_deleted(office, monkeypatch, method):
    """Found by the schema fuzz run with two workers: a PATCH whose rule another request
    deleted between reading and saving it was a 500 (and a save would have inserted it again)."""
    from reach.segmentation_api import SegmentationRuleViewSet

    admin = api(Role.ADMIN)
    body = {
        "mode": "deny",
        "vantage_points": ["office-lan"],
        "scope": "global",
        "port_start": 6379,
        "justification": "no redis from the office",
    }
    rule = admin.post(RULES, body, format="json").json()
    read = SegmentationRuleViewSet.get_object

    def read_then_deleted_by_another_request(self):
        found = read(self)
        SegmentationRule.objects.filter(pk=found.pk).delete()
        return found

    monkeypatch.setattr(SegmentationRuleViewSet, "get_object", read_then_deleted_by_another_request)
    response = getattr(admin, method)(
        f"{RULES}{rule['id']}/", {**body, "port_start": 6380, "port_end": 6380}, format="json"
    )
    assert response.status_code == 404, response.content
    assert "deleted meanwhile" in response.json()["detail"]
    assert not SegmentationRule.objects.exists()
    assert not AuditEntry.objects.filter(action__in=["segmentation.update", "segmentation.delete"]).exists()
