"""The REST API: each resource reads, filters, pages and writes like its page, through the same code.

Roles per endpoint are in test_api_access.py; the schema and the fuzz run in test_api_schema.py.
"""

import io
import json
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from alerts.choices import ChannelKind, NotificationStatus
from alerts.models import AlertRule, Channel, Mute, Notification
from inventory import review
from inventory.choices import Decision, PolicyStatus
from inventory.models import AuditEntry, Host, PortRule, Service, Zone
from portwatch.roles import Role, role_of
from reach.models import VantagePoint
from scans.choices import ChangeKind, ChunkStatus, RunStatus
from scans.models import ScanProfile, ScanRun, ScanTarget
from tests.factories import observe

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures" / "nmap"
A, B = "127.64.0.1", "127.64.0.2"


def api_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def admin_api(admin):
    return api_client(admin)


@pytest.fixture
def reviewer_api(reviewer):
    return api_client(reviewer)


@pytest.fixture
def viewer_api(viewer):
    return api_client(viewer)


def service(address, port) -> Service:
    return Service.objects.select_related("host").get(host__address=address, port=port)


def actions() -> list[str]:
    return list(AuditEntry.objects.order_by("seq").values_list("action", flat=True))


# --- authentication -------------------------------------------------------------------------


def test_a_request_without_credentials_gets_401_and_no_data():
    observe({A: [22]})
    response = APIClient().get("/api/hosts/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")
    assert A not in response.content.decode()


def test_a_bearer_token_works_like_a_token(viewer):
    key = Token.objects.create(user=viewer).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/hosts/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-key")
    assert client.get("/api/hosts/").status_code == 401


def test_an_inactive_users_token_is_refused(viewer):
    client = api_client(viewer)
    viewer.is_active = False
    viewer.save()
    assert client.get("/api/hosts/").status_code == 401


def test_a_session_works_and_its_writes_need_the_csrf_token(admin):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin)
    assert client.get("/api/targets/").status_code == 200
    response = client.post("/api/targets/", {"name": "t", "targets": "127.64.0.1"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert not ScanTarget.objects.exists()


# --- hosts, services, changes -----------------------------------------------------------------


def test_hosts_list_filter_and_detail(viewer_api):
    observe({A: [22, 80], B: [(6379, "redis")]}, hostnames={A: ["web-1.lab"]})
    listed = viewer_api.get("/api/hosts/").json()
    assert [host["address"] for host in listed["results"]] == [A, B]
    assert listed["next"] is None and listed["previous"] is None
    first = listed["results"][0]
    assert (first["zone"], first["hostnames"], first["open_count"], first["unreviewed_count"]) == (
        "default",
        ["web-1.lab"],
        2,
        2,
    )
    # The page's search box and filters: a port, a network, a sort.
    assert [h["address"] for h in viewer_api.get("/api/hosts/", {"q": "6379"}).json()["results"]] == [B]
    assert [h["address"] for h in viewer_api.get("/api/hosts/", {"q": "127.64.0.0/31"}).json()["results"]] == [A]
    assert [h["address"] for h in viewer_api.get("/api/hosts/", {"sort": "risk"}).json()["results"]] == [B, A]
    assert viewer_api.get("/api/hosts/", {"status": "sideways"}).status_code == 400

    detail = viewer_api.get(f"/api/hosts/{first['id']}/").json()
    assert [(port["protocol"], port["port"], port["state"]) for port in detail["ports"]] == [
        ("tcp", 22, "open"),
        ("tcp", 80, "open"),
    ]
    assert viewer_api.get("/api/hosts/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_services_default_to_open_ports_and_filter_like_the_ports_page(viewer_api):
    observe({A: [22, 80], B: [22]})
    observe({A: [22], B: [22]})  # 80 closes
    open_ports = viewer_api.get("/api/services/").json()["results"]
    assert sorted((s["host"]["address"], s["port"]) for s in open_ports) == [(A, 22), (B, 22)]
    everything = viewer_api.get("/api/services/", {"state": "all"}).json()["results"]
    assert len(everything) == 3
    host_id = str(Host.objects.get(address=A).public_id)
    on_a = viewer_api.get("/api/services/", {"host": host_id, "state": "closed"}).json()["results"]
    assert [(s["port"], s["state"]) for s in on_a] == [(80, "closed")]
    queue = viewer_api.get("/api/services/", {"policy": "queue"}).json()["results"]
    assert {s["review_token"] for s in queue} == {review.token_for(service(A, 22)), review.token_for(service(B, 22))}
    assert viewer_api.get("/api/services/", {"port": "70000"}).status_code == 400
    one = viewer_api.get(f"/api/services/{service(A, 22).pk}/").json()
    assert (one["port"], one["policy_status"], one["host"]["address"]) == (22, PolicyStatus.UNREVIEWED, A)


def test_changes_feed_filters_by_kind_host_and_run(viewer_api):
    first = observe({A: [22], B: [80]})
    second = observe({A: [22, 443], B: [80]})
    everything = viewer_api.get("/api/changes/").json()["results"]
    assert everything[0]["run"] == str(second.public_id)  # newest first
    opened = viewer_api.get("/api/changes/", {"kind": ChangeKind.PORT_OPENED, "run": str(second.public_id)}).json()
    assert [(c["host"]["address"], c["port"]) for c in opened["results"]] == [(A, 443)]
    host_id = str(Host.objects.get(address=B).public_id)
    on_b = viewer_api.get("/api/changes/", {"host": host_id}).json()["results"]
    assert {c["kind"] for c in on_b} == {ChangeKind.HOST_DISCOVERED, ChangeKind.PORT_OPENED}
    assert all(c["run"] == str(first.public_id) for c in on_b)
    assert viewer_api.get("/api/changes/", {"kind": "port_exploded"}).status_code == 400


def test_pages_follow_cursors_without_counting_and_sizes_are_capped(viewer_api):
    observe({f"127.64.1.{n}": [22] for n in range(1, 6)})
    with CaptureQueriesContext(connection) as queries:
        page = viewer_api.get("/api/services/", {"page_size": 2}).json()
    assert not any("COUNT(" in query["sql"].upper() for query in queries.captured_queries)
    assert len(page["results"]) == 2 and page["previous"] is None and "cursor=" in page["next"]
    second = viewer_api.get(page["next"]).json()
    assert second["previous"] and second["next"] and "page_size=2" in second["next"]
    last = viewer_api.get(second["next"]).json()
    assert len(last["results"]) == 1 and last["next"] is None
    assert viewer_api.get("/api/services/", {"cursor": "x"}).status_code == 400
    assert viewer_api.get("/api/services/", {"page": 2}).status_code == 400
    assert viewer_api.get("/api/services/", {"page_size": 0}).status_code == 400
    assert viewer_api.get("/api/services/", {"page_size": 501}).status_code == 400


@pytest.mark.parametrize("url", ["/api/hosts/", "/api/services/", "/api/changes/", "/api/rules/", "/api/runs/"])
def test_lists_make_the_same_number_of_queries_for_many_rows(viewer_api, url):
    def count():
        with CaptureQueriesContext(connection) as queries:
            assert viewer_api.get(url).status_code == 200
        return len(queries)

    observe({A: [22]})
    PortRule.objects.create(scope="global", port_start=1, port_end=1, decision="approved", justification="x")
    few = count()
    observe({f"127.64.2.{n}": [22, 80, 443] for n in range(1, 20)})
    for port in range(2, 12):
        PortRule.objects.create(scope="global", port_start=port, port_end=port, decision="approved", justification="x")
    assert count() == few


# --- port rules --------------------------------------------------------------------------------


def test_reviewer_writes_a_rule_and_the_policy_and_audit_follow(reviewer_api):
    observe({A: [8080]})
    response = reviewer_api.post(
        "/api/rules/",
        {
            "decision": "approved",
            "scope": "zone",
            "zone": "default",
            "port_start": 8080,
            "justification": "the app",
            "ticket": "tickets.example/T-9",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    rule = PortRule.objects.get()
    body = response.json()
    assert (body["id"], body["zone"], body["port_end"], body["created_by"]) == (
        str(rule.public_id),
        "default",
        8080,
        "rita-reviewer",
    )
    assert rule.ticket == "https://tickets.example/T-9"  # the form's reading of a bare link
    assert service(A, 8080).policy_status == PolicyStatus.APPROVED
    assert actions() == ["rule.create"]

    patched = reviewer_api.patch(f"/api/rules/{rule.public_id}/", {"decision": "rejected"}, format="json")
    assert patched.status_code == 200, patched.json()
    assert patched.json()["justification"] == "the app"  # the rest kept
    assert service(A, 8080).policy_status == PolicyStatus.REJECTED
    assert reviewer_api.get("/api/rules/", {"decision": "rejected"}).json()["results"][0]["id"] == str(rule.public_id)

    assert reviewer_api.delete(f"/api/rules/{rule.public_id}/").status_code == 204
    assert service(A, 8080).policy_status == PolicyStatus.UNREVIEWED
    assert actions() == ["rule.create", "rule.update", "rule.delete"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scope": "global", "port_start": 70000, "justification": "x"}, "port_start"),
        ({"scope": "global", "port_start": 80, "justification": "   "}, "justification"),
        ({"scope": "zone", "port_start": 80, "justification": "x"}, "zone"),
        ({"scope": "zone", "zone": "nowhere", "port_start": 80, "justification": "x"}, "zone"),
        ({"scope": "cidr", "cidr": "127.64.0.0/33", "port_start": 80, "justification": "x"}, "cidr"),
        ({"scope": "host", "host_address": "127.64.9.9", "port_start": 80, "justification": "x"}, "host_address"),
        ({"scope": "global", "port_start": 90, "port_end": 80, "justification": "x"}, "port_end"),
        ({"scope": "global", "port_start": "eighty", "justification": "x"}, "port_start"),
    ],
)
def test_a_bad_rule_is_refused_with_the_reason_and_writes_nothing(reviewer_api, body, field):
    response = reviewer_api.post("/api/rules/", {"decision": "approved", **body}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not PortRule.objects.exists() and not AuditEntry.objects.exists()


# --- reviews -------------------------------------------------------------------------------------


def test_approving_through_the_api_writes_what_the_review_page_writes(client, reviewer, reviewer_api):
    observe({A: [22], B: [22]})
    client.force_login(reviewer)
    client.post(
        reverse("review-decide"),
        {"token": [review.token_for(service(A, 22))], "decision": "approved", "scope": "host", "justification": "ok"},
    )
    response = reviewer_api.post(
        "/api/reviews/",
        {"tokens": [review.token_for(service(B, 22))], "decision": "approved", "scope": "host", "justification": "ok"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    rule = PortRule.objects.get(host__address=B)
    assert response.json() == {"rules": [str(rule.public_id)], "overridden": []}
    assert service(B, 22).policy_status == PolicyStatus.APPROVED

    def trail(address):
        entries = AuditEntry.objects.filter(object_repr__startswith=address).order_by("seq")
        return [(e.action, e.actor_name, e.summary, sorted(e.after)) for e in entries]

    assert trail(B) == trail(A) == [("review.approve", "rita-reviewer", "ok", ["rule", "scope", "status"])]
    decisions = reviewer_api.get("/api/reviews/", {"decision": "approved"}).json()["results"]
    assert [(d["service"], d["decision"], d["justification"]) for d in decisions] == [
        (service(B, 22).pk, Decision.APPROVED, "ok"),
        (service(A, 22).pk, Decision.APPROVED, "ok"),
    ]


def test_a_stale_token_is_a_conflict_that_applies_nothing(reviewer_api):
    observe({A: [22, 23]})
    stale = [review.token_for(service(A, 22)), review.token_for(service(A, 23))]
    PortRule.objects.create(
        scope="global", protocol="tcp", port_start=23, port_end=23, decision="rejected", justification="telnet"
    )
    from inventory import policy

    policy.evaluate(Service.objects.all())
    response = reviewer_api.post(
        "/api/reviews/",
        {"tokens": stale, "decision": "approved", "scope": "host", "justification": "ok"},
        format="json",
    )
    assert response.status_code == 409
    assert "23/tcp" in response.json()["conflicts"][0]
    assert service(A, 22).policy_status == PolicyStatus.UNREVIEWED
    assert actions() == ["review.conflict"]


@pytest.mark.parametrize(
    "body",
    [
        {"scope": "tag", "justification": "x"},  # no tag
        {"scope": "tag", "tag": "no-such-tag", "justification": "x"},
        {"scope": "cidr", "cidr": "127.99.0.0/16", "justification": "x"},  # the host is outside
        {"scope": "host", "justification": " "},
        {"scope": "universe", "justification": "x"},
        {"scope": "host", "justification": "x", "expires_at": "2001-01-01T00:00:00Z"},
        {"scope": "host", "justification": "x", "tokens": ["1:2:3"]},
        {"scope": "host", "justification": "x", "tokens": []},
    ],
)
def test_a_bad_decision_is_refused_and_writes_nothing(reviewer_api, body):
    observe({A: [22]})
    data = {"tokens": [review.token_for(service(A, 22))], "decision": "rejected", **body}
    response = reviewer_api.post("/api/reviews/", data, format="json")
    assert response.status_code == 400, response.json()
    assert not PortRule.objects.exists() and not AuditEntry.objects.exists()


# --- targets, schedules, profiles ----------------------------------------------------------------


def test_admin_creates_edits_and_deletes_a_target(admin_api):
    response = admin_api.post(
        "/api/targets/", {"name": "lab", "targets": "127.64.0.1, 127.64.0.0/30", "ports": "80,22,21-23"}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["targets"], body["ports"], body["zone"], body["profile"], body["enabled"]) == (
        "127.64.0.1\n127.64.0.0/30",
        "21-23,80",
        "default",
        "standard",
        True,
    )
    target = ScanTarget.objects.get()
    assert target.created_by.username == "alice-admin"
    patched = admin_api.patch(f"/api/targets/{target.public_id}/", {"name": "lab-2"}, format="json")
    assert patched.status_code == 200 and patched.json()["ports"] == "21-23,80"
    assert admin_api.delete(f"/api/targets/{target.public_id}/").status_code == 204
    assert actions() == ["target.create", "target.update", "target.delete"]
    assert not ScanTarget.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"targets": "127.0.0.0/8"}, "targets"),  # beyond the size cap
        ({"targets": "127.64.0.1; rm -rf /"}, "targets"),
        ({"targets": "127.64.0.1", "ports": "0-70000"}, "ports"),
        ({"targets": "127.64.0.1", "profile": "nope"}, "profile"),
        ({"targets": "127.64.0.1", "zone": "nowhere"}, "zone"),
        ({"targets": "127.64.0.1", "schedule_kind": "cron", "schedule_cron": "* * *"}, "schedule_cron"),
        ({"targets": "127.64.0.1", "schedule_kind": "interval"}, "schedule_interval"),
        ({"targets": "127.64.0.1", "schedule_timezone": "Mars/Olympus"}, "schedule_timezone"),
        ({"targets": ["127.64.0.1"]}, "targets"),
    ],
)
def test_a_bad_target_is_refused_with_the_reason_and_writes_nothing(admin_api, body, field):
    response = admin_api.post("/api/targets/", {"name": "bad", **body}, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not ScanTarget.objects.exists() and not AuditEntry.objects.exists()


def test_a_schedule_is_read_and_changed_without_touching_the_rest_of_the_target(admin_api, viewer_api):
    target = ScanTarget.objects.create(
        name="lab", zone=Zone.default(), targets="127.64.0.1", ports="22", profile=ScanProfile.objects.get(slug="quick")
    )
    listed = viewer_api.get("/api/schedules/").json()["results"]
    assert listed == [
        {
            "target": str(target.public_id),
            "name": "lab",
            "enabled": True,
            "schedule_kind": "manual",
            "schedule_interval": None,
            "schedule_cron": "",
            "schedule_timezone": "UTC",
            "description": "manual",
            "next_run_at": None,
            "last_skipped_slot": None,
        }
    ]
    url = f"/api/schedules/{target.public_id}/"
    response = admin_api.patch(url, {"schedule_kind": "cron", "schedule_cron": "0  2 * * *"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["schedule_cron"] == "0 2 * * *" and response.json()["next_run_at"]
    target.refresh_from_db()
    assert (target.targets, target.ports, target.profile.slug) == ("127.64.0.1", "22", "quick")
    assert admin_api.patch(url, {"schedule_kind": "interval"}, format="json").status_code == 400
    assert admin_api.put(url, {"schedule_kind": "interval", "schedule_interval": 30}, format="json").status_code == 200
    target.refresh_from_db()
    assert (target.schedule_kind, target.schedule_interval, target.schedule_cron) == ("interval", 30, "")
    assert actions() == ["target.update", "target.update"]


def test_profiles_are_made_from_vetted_fields_and_built_in_ones_are_kept(admin_api):
    response = admin_api.post(
        "/api/profiles/", {"name": "Web", "slug": "web", "scripts": ["http-title"], "top_ports": 100}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert ScanProfile.objects.get(slug="web").scripts == ["http-title"]
    assert (
        admin_api.post("/api/profiles/", {"name": "X", "slug": "x", "scripts": ["vuln"]}, format="json").status_code
        == 400
    )
    bad_udp = {"name": "U", "slug": "u", "scan_type": "udp", "port_scope": "all"}
    assert admin_api.post("/api/profiles/", bad_udp, format="json").status_code == 400
    assert admin_api.patch("/api/profiles/quick/", {"name": "Mine"}, format="json").status_code == 403
    assert admin_api.delete("/api/profiles/quick/").status_code == 403
    ScanTarget.objects.create(
        name="t", zone=Zone.default(), targets="127.64.0.1", profile=ScanProfile.objects.get(slug="web")
    )
    in_use = admin_api.delete("/api/profiles/web/")
    assert in_use.status_code == 409 and "t" in in_use.json()["detail"]
    assert actions() == ["profile.create"]


# --- runs and imports --------------------------------------------------------------------------------


def test_a_run_is_started_watched_and_cancelled(admin_api, django_capture_on_commit_callbacks):
    target = ScanTarget.objects.create(
        name="lab", zone=Zone.default(), targets="127.64.0.0/30", profile=ScanProfile.objects.get(slug="quick")
    )
    # Queued in the test's transaction: nothing reaches a worker.
    response = admin_api.post("/api/runs/", {"target": str(target.public_id)}, format="json")
    assert response.status_code == 201, response.json()
    run = response.json()
    assert (run["status"], run["hosts_total"], run["target_name"]) == (RunStatus.QUEUED, 4, "lab")
    assert [chunk["status"] for chunk in run["chunks"]] == [ChunkStatus.QUEUED]
    assert admin_api.get("/api/runs/", {"status": "queued"}).json()["results"][0]["id"] == run["id"]

    with django_capture_on_commit_callbacks(execute=True):
        cancelled = admin_api.post(f"/api/runs/{run['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["cancel_requested"]
    status = admin_api.get(f"/api/runs/{run['id']}/").json()
    assert status["status"] == RunStatus.CANCELLED and status["is_terminal"]
    assert admin_api.post(f"/api/runs/{run['id']}/cancel/").status_code == 409
    assert actions() == ["target.scan", "run.cancel"]


def test_scan_now_of_a_target_with_several_vantage_points_says_every_run_it_started(admin_api):
    target = ScanTarget.objects.create(
        name="lab", zone=Zone.default(), targets="127.64.0.0/30", profile=ScanProfile.objects.get(slug="quick")
    )
    target.vantage_points.set([Zone.default().home_vantage, VantagePoint.objects.create(name="office-lan")])
    response = admin_api.post("/api/runs/", {"target": str(target.public_id)}, format="json")
    assert response.status_code == 201, response.json()
    run = response.json()
    assert run["vantage"] == Zone.default().home_vantage.name  # the zone's home first, with its chunks
    assert [(other["vantage"], other["status"]) for other in run["also_started"]] == [("office-lan", RunStatus.QUEUED)]
    assert {run["id"], run["also_started"][0]["id"]} == {str(r.public_id) for r in ScanRun.objects.all()}


def test_a_run_of_one_host_stays_within_its_target(admin_api):
    target = ScanTarget.objects.create(
        name="lab", zone=Zone.default(), targets="127.64.0.0/30", profile=ScanProfile.objects.get(slug="quick")
    )
    one = admin_api.post("/api/runs/", {"target": str(target.public_id), "address": "127.64.0.2"}, format="json")
    assert one.status_code == 201 and one.json()["hosts_total"] == 1
    outside = admin_api.post("/api/runs/", {"target": str(target.public_id), "address": "127.64.9.9"}, format="json")
    assert outside.status_code == 400 and "not part of the target" in json.dumps(outside.json())
    missing = admin_api.post("/api/runs/", {"target": "00000000-0000-0000-0000-000000000000"}, format="json")
    assert missing.status_code == 400 and "target" in missing.json()
    assert ScanRun.objects.count() == 1


def test_an_nmap_file_is_imported_as_a_run(admin_api):
    path = FIXTURES / "lab_two_hosts_versions.xml"
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="text/xml")
    response = admin_api.post("/api/imports/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    assert (response.json()["status"], response.json()["hosts_total"]) == (RunStatus.SUCCEEDED, 2)
    assert set(Host.objects.values_list("address", flat=True)) == {"127.77.9.1", "127.77.9.2"}
    assert actions() == ["import"]


@pytest.mark.parametrize(
    "name", ["not_xml.xml", "truncated_mid_host.xml", "xxe_external_entity.xml", "billion_laughs.xml"]
)
def test_a_bad_nmap_file_is_refused_and_imports_nothing(admin_api, name):
    path = FIXTURES / name
    upload = SimpleUploadedFile(name, path.read_bytes(), content_type="text/xml")
    response = admin_api.post("/api/imports/", {"file": upload, "zone": "default"}, format="multipart")
    assert response.status_code == 400
    assert "Nothing was imported" in response.json()["file"][0]
    assert not ScanRun.objects.exists() and not Host.objects.exists()
    assert actions() == ["import.refuse"]


def test_an_import_needs_a_file_and_a_known_zone(admin_api):
    assert admin_api.post("/api/imports/", {}, format="multipart").status_code == 400
    path = FIXTURES / "lab_two_hosts_versions.xml"
    upload = SimpleUploadedFile(path.name, path.read_bytes())
    assert admin_api.post("/api/imports/", {"file": upload, "zone": "mars"}, format="multipart").status_code == 400
    assert admin_api.post("/api/imports/", {"file": "x"}, format="json").status_code == 415
    assert not ScanRun.objects.exists() and not AuditEntry.objects.exists()


# --- channels, alert rules, notifications, mutes ------------------------------------------------------

SECRET_URL = "http://127.64.0.1:9/hook/s3cr3t-path?token=s3cr3t-token"


def test_channels_never_show_their_target_or_signing_secret(admin_api):
    response = admin_api.post(
        "/api/channels/",
        {"name": "hook", "kind": "webhook", "target": SECRET_URL, "allow_private": True, "rules": []},
        format="json",
    )
    assert response.status_code == 201, response.json()
    channel = Channel.objects.get()
    assert channel.target == SECRET_URL
    for body in (response.content, admin_api.get(f"/api/channels/{channel.public_id}/").content):
        text = body.decode()
        assert "s3cr3t" not in text and channel.signing_secret not in text and '"target"' not in text
    # Renamed without sending the target again: it is kept.
    renamed = admin_api.patch(f"/api/channels/{channel.public_id}/", {"name": "hook-2"}, format="json")
    assert renamed.status_code == 200, renamed.json()
    channel.refresh_from_db()
    assert (channel.name, channel.target) == ("hook-2", SECRET_URL)
    entries = json.dumps(list(AuditEntry.objects.values("before", "after", "summary")))
    assert "s3cr3t" not in entries and channel.signing_secret not in entries
    assert actions() == ["channel.create", "channel.update"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "kind": "webhook", "target": "ftp://127.64.0.1/"},
        {"name": "x", "kind": "webhook", "target": "http://127.64.0.1/"},  # private, not allowed
        {"name": "x", "kind": "email", "target": "not-an-address"},
        {"name": "x", "kind": "pigeon"},
        {"name": "x", "kind": "log", "digest_minutes": 0},
        {"name": "x", "kind": "log", "rules": [999999]},
    ],
)
def test_a_bad_channel_is_refused_and_writes_nothing(admin_api, body):
    response = admin_api.post("/api/channels/", body, format="json")
    assert response.status_code == 400, response.json()
    assert not Channel.objects.exists() and not AuditEntry.objects.exists()


def test_a_channel_test_is_queued_and_a_channel_deleted(admin_api):
    channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
    response = admin_api.post(f"/api/channels/{channel.public_id}/test/")
    assert response.status_code == 202
    assert Notification.objects.get().public_id.hex == response.json()["notification"].replace("-", "")
    assert admin_api.delete(f"/api/channels/{channel.public_id}/").status_code == 204
    assert actions() == ["channel.test", "channel.delete"]


def test_an_object_deleted_by_another_request_meanwhile_is_a_404_not_saved_again(admin_api, monkeypatch):
    """An update that reads its object, then saves after another request deleted it, must
    not insert it again (Django's save() does when its UPDATE finds no row)."""
    from alerts.api import AlertRuleViewSet

    rule = AlertRule.objects.create(name="kept")
    read = AlertRuleViewSet.get_object

    def read_then_deleted_by_another_request(self):
        found = read(self)
        AlertRule.objects.filter(pk=found.pk).delete()
        return found

    monkeypatch.setattr(AlertRuleViewSet, "get_object", read_then_deleted_by_another_request)
    response = admin_api.patch(f"/api/alert-rules/{rule.pk}/", {"name": "renamed"}, format="json")
    assert response.status_code == 404 and "deleted meanwhile" in response.json()["detail"]
    assert not AlertRule.objects.filter(name__in=["kept", "renamed"]).exists()
    assert "alert_rule.update" not in actions()


def test_alert_rules_are_read_by_everyone_and_written_by_admins(admin_api, viewer_api):
    channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
    response = admin_api.post(
        "/api/alert-rules/",
        {
            "name": "redis opened",
            "kinds": ["port_opened"],
            "policy_statuses": ["unreviewed"],
            "min_risk": 3,
            "zone": "default",
            "cidr": "127.64.0.0/16",
            "channels": [str(channel.public_id)],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    rule = AlertRule.objects.get(name="redis opened")
    assert (rule.min_risk, rule.zone.name, list(rule.channels.all())) == (3, "default", [channel])
    listed = viewer_api.get("/api/alert-rules/").json()["results"]
    assert any(item["channels"] == [str(channel.public_id)] for item in listed)
    for bad, field in (({"cidr": "nope"}, "cidr"), ({"kinds": ["boom"]}, "kinds"), ({"zone": "mars"}, "zone")):
        response = admin_api.post("/api/alert-rules/", {"name": "x", **bad}, format="json")
        assert response.status_code == 400 and field in response.json()
    assert not AlertRule.objects.filter(name="x").exists()
    assert admin_api.delete(f"/api/alert-rules/{rule.pk}/").status_code == 204
    assert actions() == ["alert_rule.create", "alert_rule.delete"]


def test_a_failed_notification_is_retried_or_dismissed_once(admin_api, viewer_api):
    channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
    failed = Notification.objects.create(channel=channel, dedupe_key="a", status=NotificationStatus.FAILED)
    other = Notification.objects.create(channel=channel, dedupe_key="b", status=NotificationStatus.FAILED)
    listed = viewer_api.get("/api/notifications/", {"status": "failed"}).json()["results"]
    assert {item["id"] for item in listed} == {str(failed.public_id), str(other.public_id)}
    assert listed[0]["channel"]["name"] == "log" and "target" not in listed[0]["channel"]
    retried = admin_api.post(f"/api/notifications/{failed.public_id}/retry/")
    assert retried.status_code == 200 and retried.json()["status"] == NotificationStatus.PENDING
    assert admin_api.post(f"/api/notifications/{failed.public_id}/retry/").status_code == 409
    assert admin_api.post(f"/api/notifications/{other.public_id}/dismiss/").json()["status"] == "dismissed"
    assert actions() == ["notification.retry", "notification.dismiss"]


def test_reviewers_set_and_end_mutes(reviewer_api):
    observe({A: [22]})
    ends = (timezone.now() + timezone.timedelta(hours=2)).isoformat()
    response = reviewer_api.post(
        "/api/mutes/", {"scope": "host", "host_address": A, "ends_at": ends, "reason": "CHG-1"}, format="json"
    )
    assert response.status_code == 201, response.json()
    mute = Mute.objects.get()
    assert (mute.host.address, response.json()["active"], response.json()["host_address"]) == (A, True, A)
    ended = reviewer_api.post(f"/api/mutes/{mute.pk}/end/")
    assert ended.status_code == 200 and not ended.json()["active"]
    past = (timezone.now() - timezone.timedelta(hours=1)).isoformat()
    assert reviewer_api.post("/api/mutes/", {"ends_at": past, "reason": "x"}, format="json").status_code == 400
    assert reviewer_api.post("/api/mutes/", {"ends_at": ends, "reason": " "}, format="json").status_code == 400
    assert actions() == ["mute.create", "mute.end"]


# --- tokens ---------------------------------------------------------------------------------------------


def test_a_person_creates_replaces_and_revokes_their_token(client, viewer):
    client.force_login(viewer)
    page = client.get(reverse("api-token"))
    assert page.status_code == 200 and "You have no API token" in page.content.decode()

    created = client.post(reverse("api-token"), {"action": "create"})
    key = Token.objects.get(user=viewer).key
    assert key in created.content.decode() and created["Cache-Control"] == "no-store"
    assert key not in client.get(reverse("api-token")).content.decode()  # shown once
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/hosts/").status_code == 200

    client.post(reverse("api-token"), {"action": "create"})
    assert api.get("/api/hosts/").status_code == 401  # the old key is gone
    client.post(reverse("api-token"), {"action": "revoke"})
    assert not Token.objects.filter(user=viewer).exists()
    assert actions() == ["api_token.create", "api_token.create", "api_token.revoke"]
    assert key not in json.dumps(list(AuditEntry.objects.values("summary", "object_id", "object_repr")))


def test_admins_see_who_has_a_token_and_revoke_it(admin_api, viewer):
    key = Token.objects.create(user=viewer).key
    listed = admin_api.get("/api/tokens/")
    assert {item["username"] for item in listed.json()["results"]} == {"alice-admin", "victor-viewer"}
    assert key not in listed.content.decode()
    assert admin_api.delete(f"/api/tokens/{viewer.username}/").status_code == 204
    assert not Token.objects.filter(user=viewer).exists()
    assert actions() == ["api_token.revoke"]


def test_an_admin_creates_a_token_for_a_service_account_shown_once(admin_api, admin, viewer):
    created = admin_api.post("/api/tokens/", {"username": viewer.username}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["username"], body["role"], body["replaced"]) == ("victor-viewer", "viewer", False)
    assert created["Cache-Control"] == "no-store"
    key = body["key"]
    assert api_client_with(key).get("/api/hosts/").status_code == 200
    listed = admin_api.get("/api/tokens/")
    assert key not in listed.content.decode()
    assert {"username": "victor-viewer", "role": "viewer"}.items() <= listed.json()["results"][1].items()

    # A script run twice does not cut off the first key by accident.
    again = admin_api.post("/api/tokens/", {"username": viewer.username}, format="json")
    assert again.status_code == 409 and "replace" in again.json()["detail"]
    assert api_client_with(key).get("/api/hosts/").status_code == 200
    replaced = admin_api.post("/api/tokens/", {"username": viewer.username, "replace": True}, format="json")
    assert replaced.status_code == 201 and replaced.json()["replaced"] is True
    assert api_client_with(key).get("/api/hosts/").status_code == 401
    assert api_client_with(replaced.json()["key"]).get("/api/hosts/").status_code == 200

    assert admin_api.post("/api/tokens/", {"username": "nobody"}, format="json").status_code == 400
    own = admin_api.post("/api/tokens/", {"username": admin.username, "replace": True}, format="json")
    assert own.status_code == 409 and "account" in own.json()["detail"]
    entries = AuditEntry.objects.filter(action__startswith="api_token").order_by("seq")
    assert [(e.action, e.actor_name, e.object_repr, e.summary) for e in entries] == [
        ("api_token.create", "alice-admin", "victor-viewer", "Created by an admin."),
        ("api_token.create", "alice-admin", "victor-viewer", "Replaced by an admin."),
    ]
    assert key not in json.dumps(list(AuditEntry.objects.values("summary", "object_id", "object_repr", "after")))


def api_client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def api_token_command(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("api_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_api_token_command_prints_the_key_once_and_lists_and_revokes_audited(admin, viewer):
    key, said = api_token_command("create", viewer.username, "--user", admin.username)
    key = key.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", key) and "shown only this once" in said
    assert api_client_with(key).get("/api/hosts/").status_code == 200
    listed, _ = api_token_command("list")
    assert re.search(r"^victor-viewer\s+viewer\s+\d{4}-\d\d-\d\d", listed, re.MULTILINE) and key not in listed

    new_key, said = api_token_command("create", viewer.username)
    assert "the old key is refused" in said
    assert api_client_with(key).get("/api/hosts/").status_code == 401
    assert api_client_with(new_key.strip()).get("/api/hosts/").status_code == 200
    assert (
        "Revoked victor-viewer's API token" in api_token_command("revoke", viewer.username, "--user", admin.username)[0]
    )
    assert api_client_with(new_key.strip()).get("/api/hosts/").status_code == 401
    entries = AuditEntry.objects.order_by("seq")
    assert [(e.action, e.actor_name, e.object_repr, e.summary) for e in entries] == [
        ("api_token.create", "alice-admin", "victor-viewer", "Created by manage.py api_token."),
        ("api_token.create", "portwatch", "victor-viewer", "Replaced by manage.py api_token."),
        ("api_token.revoke", "alice-admin", "victor-viewer", "Revoked by manage.py api_token."),
    ]
    assert key not in json.dumps(list(entries.values("summary", "object_repr", "before", "after")))


def test_the_api_token_command_creates_a_service_account_for_a_script(admin):
    key, said = api_token_command("create", "prometheus", "--service-account", "viewer", "--user", admin.username)
    scraper = User.objects.get(username="prometheus")
    assert role_of(scraper) == Role.VIEWER and not scraper.has_usable_password()
    assert "Created the service account prometheus (viewer role, no password)" in said
    client = api_client_with(key.strip())
    assert client.get("/api/hosts/").status_code == 200
    assert client.get("/api/channels/").status_code == 403  # a viewer's token, nothing more
    assert ("user.create", "alice-admin", "prometheus") in AuditEntry.objects.values_list(
        "action", "actor_name", "object_repr"
    )
    # Run again (a deployment script): the same account, a new key; a role is never changed.
    api_token_command("create", "prometheus", "--service-account", "viewer")
    with pytest.raises(CommandError, match="exists with the viewer role; this command does not change roles"):
        api_token_command("create", "prometheus", "--service-account", "admin")
    assert role_of(User.objects.get(username="prometheus")) == Role.VIEWER


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "nobody"], "There is no user 'nobody'. Add --service-account"),
        (["create", "bad name!", "--service-account", "viewer"], "Enter a valid username"),
        (["revoke", "victor-viewer"], "victor-viewer has no API token."),
        (["revoke", "nobody"], "There is no user 'nobody'."),
        (["create", "victor-viewer", "--user", "victor-viewer"], "does not have the admin role"),
    ],
)
def test_the_api_token_command_refuses_bad_input_and_writes_nothing(viewer, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        api_token_command(*args)
    assert not Token.objects.exists() and not AuditEntry.objects.exists()
    assert User.objects.count() == 1


# --- docs -------------------------------------------------------------------------------------------------


def test_the_docs_page_is_for_logged_in_people_and_runs_under_the_csp(client, viewer):
    response = client.get("/api/docs/")
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    client.force_login(viewer)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert "script-src 'self'" in page["Content-Security-Policy"]
    assert "unsafe-inline" not in page["Content-Security-Policy"]
    text = page.content.decode()
    assert "cdn" not in text.lower() and "?script=" in text
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert client.get("/api/schema/").status_code == 200


def test_an_admin_does_not_revoke_their_own_token_through_the_api(admin_api, admin):
    response = admin_api.delete(f"/api/tokens/{admin.username}/")
    assert response.status_code == 409 and "account" in response.json()["detail"]
    assert Token.objects.filter(user=admin).exists()
