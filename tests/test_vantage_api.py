"""Vantage points in the API: read by everyone, written by admins through the pages' form and checks.

``/api/vantage-points/`` says each one's queue, live workers and status;
``/api/port-views/`` is each vantage point's view of the ports, keyset-paged;
targets, runs and changes name their vantage points. Bad input is a 400 that
writes nothing; a vantage point still needed is a 409. Roles are swept by
tests/test_api_access.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inventory.models import AuditEntry, Host, Zone
from portwatch.roles import Role
from reach.models import VantagePoint
from scans.models import ScanProfile, ScanTarget, WorkerHeartbeat
from tests.conftest import make_user
from tests.factories import scan

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

A, B = "198.18.42.1", "198.18.42.2"
HOSTILE = "<script>alert(1)</script>"


def api(role=Role.ADMIN) -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=make_user(f"api-{role.label}", role))
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def office():
    return VantagePoint.objects.create(name="office-lan", description="the office")


@pytest.fixture
def home():
    return Zone.default().home_vantage


# --- vantage points ----------------------------------------------------------------------------


def test_the_list_says_each_vantage_points_home_queue_status_and_workers(office, home):
    dmz = VantagePoint.objects.create(name="dmz")
    WorkerHeartbeat.objects.create(name="vantage-office-lan@s1", queues=["scan-from.office-lan"])
    dead = WorkerHeartbeat.objects.create(
        name="vantage-dmz@old", queues=["scan-from.dmz"], seen_at=timezone.now() - timedelta(hours=1)
    )
    client = api(Role.VIEWER)
    response = client.get("/api/vantage-points/")
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()["results"]}
    assert rows["office-lan"] == {
        "name": "office-lan",
        "description": "the office",
        "home_of": None,
        "queue": "scan-from.office-lan",
        "remote": False,
        "status": "listening",
        "silent_since": None,
        "workers": ["vantage-office-lan@s1"],
        "created_at": rows["office-lan"]["created_at"],
    }
    assert (rows["dmz"]["status"], rows["dmz"]["workers"]) == ("silent", [])
    assert rows["dmz"]["silent_since"] == serializers.DateTimeField().to_representation(dead.seen_at)
    assert (rows[home.name]["home_of"], rows[home.name]["queue"], rows[home.name]["silent_since"]) == (
        "default",
        "scan.default",
        None,
    )
    detail = client.get(f"/api/vantage-points/{dmz.name}/").json()
    assert detail["status"] == "silent" and detail["name"] == "dmz"


def test_the_list_reads_the_heartbeats_once_whatever_its_length(office, django_assert_max_num_queries):
    client = api(Role.VIEWER)
    client.get("/api/vantage-points/")  # the token's first use
    for number in range(20):
        VantagePoint.objects.create(name=f"lab-{number}")
    with django_assert_max_num_queries(4):  # the token, its user's role, the page, the heartbeats
        assert len(client.get("/api/vantage-points/").json()["results"]) == 22


def test_an_admin_creates_one_and_the_audit_log_records_it():
    payload = {"name": "dmz", "description": "edge", "home_of": "default"}
    response = api().post("/api/vantage-points/", payload, format="json")
    assert response.status_code == 201, response.content
    vantage = VantagePoint.objects.get(name="dmz")
    assert (vantage.is_home, response.json()["queue"], response.json()["home_of"]) == (False, "scan-from.dmz", None)
    assert AuditEntry.objects.get(action="vantage.create").after["name"] == "dmz"


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"name": "office-lan"}, "name", "The name “office-lan” is taken by another vantage point"),
        ({"name": "default"}, "name", "taken by the home of zone default"),
        ({"name": "new"}, "name", "is reserved"),
        ({"name": "office lan"}, "name", "letters, numbers, underscores or hyphens"),
        ({"name": "x" * 64}, "name", "no more than 63 characters"),
        ({"description": "no name"}, "name", "This field is required"),
        ({"name": "ok", "description": "x" * 256}, "description", "no more than 255 characters"),
        ({"name": ["a", "b"]}, "name", "Enter a valid"),
    ],
)
def test_a_bad_payload_is_a_clear_400_and_writes_nothing(office, payload, field, message):
    before = sorted(VantagePoint.objects.values_list("name", "description"))
    response = api().post("/api/vantage-points/", payload, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert sorted(VantagePoint.objects.values_list("name", "description")) == before
    assert not AuditEntry.objects.exists()


def test_renaming_one_moves_its_queue(office):
    response = api().patch("/api/vantage-points/office-lan/", {"name": "office-wifi"}, format="json")
    assert response.status_code == 200 and response.json()["queue"] == "scan-from.office-wifi"
    assert AuditEntry.objects.get(action="vantage.update").before["name"] == "office-lan"


def test_a_home_keeps_its_name_its_description_may_change(home):
    client = api()
    response = client.put(f"/api/vantage-points/{home.name}/", {"name": "elsewhere"}, format="json")
    assert response.status_code == 400 and "it keeps its name" in response.json()["name"][0]
    response = client.patch(f"/api/vantage-points/{home.name}/", {"description": "our DC"}, format="json")
    assert response.status_code == 200 and response.json()["name"] == home.name
    home.refresh_from_db()
    assert (home.name, home.description) == ("default", "our DC")


def test_deleting_a_home_is_a_409_and_keeps_it(home):
    response = api().delete(f"/api/vantage-points/{home.name}/")
    assert response.status_code == 409 and "is the home of zone default" in response.json()["detail"]
    assert VantagePoint.objects.filter(pk=home.pk).exists()


def test_deleting_one_that_has_scanned_is_a_409_not_a_500(office):
    scan(office, {A: {22: "open"}})
    response = api().delete("/api/vantage-points/office-lan/")
    assert response.status_code == 409 and "has scanned" in response.json()["detail"]
    assert VantagePoint.objects.filter(name="office-lan").exists()
    assert not AuditEntry.objects.filter(action="vantage.delete").exists()


def test_deleting_one_a_target_scans_from_is_a_409(office):
    target = ScanTarget.objects.create(
        name="t", zone=Zone.default(), targets=A, profile=ScanProfile.objects.get(slug="quick")
    )
    target.vantage_points.set([office])
    response = api().delete("/api/vantage-points/office-lan/")
    assert response.status_code == 409 and "Remove it from them first" in response.json()["detail"]


def test_deleting_an_unused_one_is_audited(office):
    assert api().delete("/api/vantage-points/office-lan/").status_code == 204
    assert not VantagePoint.objects.filter(name="office-lan").exists()
    assert AuditEntry.objects.get(action="vantage.delete").object_repr == "office-lan"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.REVIEWER])
def test_readers_cannot_write(office, role):
    client = api(role)
    assert client.post("/api/vantage-points/", {"name": "dmz"}).status_code == 403
    assert client.patch("/api/vantage-points/office-lan/", {"description": "x"}).status_code == 403
    assert client.delete("/api/vantage-points/office-lan/").status_code == 403
    assert list(VantagePoint.objects.filter(home_of__isnull=True).values_list("name", "description")) == [
        ("office-lan", "the office")
    ]


# --- port views ----------------------------------------------------------------------------------


@pytest.fixture
def views(office):
    dmz = VantagePoint.objects.create(name="dmz")
    scan(office, {A: {22: "open", 80: "open"}, B: {5432: "open"}})
    scan(office, {A: {22: ("open", HOSTILE), 80: "closed"}, B: {5432: "open"}})
    scan(dmz, {A: {22: "open"}})
    return office, dmz


def rows(response):
    assert response.status_code == 200, response.content
    return [(row["vantage"], row["host"]["address"], row["port"], row["state"]) for row in response.json()["results"]]


def test_port_views_list_each_vantage_points_open_ports_unless_asked(views):
    client = api(Role.VIEWER)
    # By host, port, then vantage point (office-lan was made first): the rows' unique index.
    assert rows(client.get("/api/port-views/")) == [
        ("office-lan", A, 22, "open"),
        ("dmz", A, 22, "open"),
        ("office-lan", B, 5432, "open"),
    ]
    host = Host.objects.get(address=A)
    assert sorted(rows(client.get("/api/port-views/", {"host": host.public_id, "state": "all"}))) == [
        ("dmz", A, 22, "open"),
        ("office-lan", A, 22, "open"),
        ("office-lan", A, 80, "closed"),
    ]
    assert rows(client.get("/api/port-views/", {"vantage": "dmz"})) == [("dmz", A, 22, "open")]
    assert rows(client.get("/api/port-views/", {"vantage": "office-lan", "state": "closed"})) == [
        ("office-lan", A, 80, "closed")
    ]
    first = client.get("/api/port-views/", {"vantage": "office-lan", "port": 22}).json()["results"][0]
    assert first["name"] == HOSTILE and first["stale"] is False  # data, as the host announced it


def test_port_views_are_keyset_paged(views):
    client = api(Role.VIEWER)
    seen, url = [], "/api/port-views/?state=all&page_size=1"
    while url:
        page = client.get(url).json()
        seen += [(row["vantage"], row["host"]["address"], row["port"]) for row in page["results"]]
        url = page["next"]
    assert len(seen) == 4 == len(set(seen))
    assert client.get("/api/port-views/", {"cursor": "abc"}).status_code == 400


@pytest.mark.parametrize(
    "query", [{"vantage": "nowhere"}, {"port": "70000"}, {"state": "maybe"}, {"host": "not-a-uuid"}, {"zone": "x"}]
)
def test_bad_port_view_filters_are_a_400(views, query):
    assert api(Role.VIEWER).get("/api/port-views/", query).status_code == 400


# --- targets, runs and changes ------------------------------------------------------------------


def target_payload(**overrides):
    return {"name": "office view", "targets": "127.0.0.1", "profile": "quick", **overrides}


def test_a_target_is_created_and_changed_with_the_vantage_points_it_is_scanned_from(office):
    client = api()
    response = client.post("/api/targets/", target_payload(vantage_points=["office-lan", "default"]), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["vantage_points"] == ["default", "office-lan"]
    target = ScanTarget.objects.get()
    assert sorted(target.vantage_points.values_list("name", flat=True)) == ["default", "office-lan"]
    # Changing something else, or its schedule, keeps where it is scanned from.
    url = f"/api/targets/{target.public_id}/"
    assert client.patch(url, {"ports": "22"}, format="json").json()["vantage_points"] == ["default", "office-lan"]
    schedule = f"/api/schedules/{target.public_id}/"
    assert (
        client.patch(schedule, {"schedule_kind": "interval", "schedule_interval": 5}, format="json").status_code == 200
    )
    assert sorted(target.vantage_points.values_list("name", flat=True)) == ["default", "office-lan"]
    assert client.patch(url, {"vantage_points": []}, format="json").json()["vantage_points"] == []


def test_a_target_with_an_unknown_vantage_point_is_a_400_and_nothing_is_written():
    response = api().post("/api/targets/", target_payload(vantage_points=["nowhere"]), format="json")
    assert response.status_code == 400 and "vantage_points" in response.json()
    assert not ScanTarget.objects.exists()


def test_runs_and_changes_name_their_vantage_point_and_filter_by_it(office):
    scan(None, {A: {22: "open"}})
    scan(office, {A: {22: "open", 80: "open"}})
    client = api(Role.VIEWER)
    runs = client.get("/api/runs/").json()["results"]
    assert sorted(run["vantage"] for run in runs) == ["default", "office-lan"]
    assert [run["vantage"] for run in client.get("/api/runs/", {"vantage": "office-lan"}).json()["results"]] == [
        "office-lan"
    ]
    changes = client.get("/api/changes/", {"vantage": "office-lan"}).json()["results"]
    assert sorted((change["kind"], change["port"], change["vantage"]) for change in changes) == [
        ("exposure_opened", 22, "office-lan"),
        ("exposure_opened", 80, "office-lan"),
    ]
    assert client.get("/api/changes/", {"vantage": "nowhere"}).status_code == 400


def test_a_remote_vantage_points_key_is_never_shown_nor_audited(office):
    office.remote = True
    office.save()
    client = api()
    row = client.get("/api/vantage-points/office-lan/").json()
    assert row["remote"] is True and "key" not in row and office.key not in str(row)
    response = client.patch("/api/vantage-points/office-lan/", {"description": "moved", "key": "x"}, format="json")
    assert response.status_code == 200 and office.key not in response.content.decode()
    office.refresh_from_db()
    assert office.key != "x" and len(office.key) == 64
    assert office.key not in str(AuditEntry.objects.get(action="vantage.update").after)


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgresql("two writers at once: SQLite takes one at a time")
def test_two_creates_of_one_name_at_the_same_moment_are_a_conflict_not_a_server_error():
    """Both pass validation (neither sees the other's row); the database refuses the second: a 409 that
    says so, nothing written twice, nothing half written."""
    import threading

    from django.db import connection, transaction

    from tests.processes import backend_pid, wait_for, waits_for_a_lock

    client = api()
    inserted, pid = threading.Event(), {}

    def first():  # the other request: its row is written, not yet committed
        try:
            with transaction.atomic():
                VantagePoint.objects.create(name="dmz")
                inserted.set()
                wait_for(lambda: "second" in pid and waits_for_a_lock(pid["second"]), 30, message="the second")
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    inserted.wait(30)
    pid["second"] = backend_pid()
    response = client.post("/api/vantage-points/", {"name": "dmz", "description": "edge"}, format="json")
    thread.join(60)
    assert response.status_code == 409, response.content
    assert "at the same moment" in response.json()["detail"] and "Nothing was saved" in response.json()["detail"]
    assert list(VantagePoint.objects.filter(name="dmz").values_list("description", flat=True)) == [""]
    assert not AuditEntry.objects.filter(action="vantage.create").exists()


def test_only_what_a_concurrent_write_causes_is_read_as_one():
    import sqlite3

    from django.db import IntegrityError, OperationalError

    from portwatch.api.base import same_moment

    class DriverError(Exception):  # psycopg's errors carry the SQLSTATE
        def __init__(self, sqlstate):
            super().__init__(sqlstate)
            self.sqlstate = sqlstate

    def caused(error, cause):
        error.__cause__ = cause
        return error

    deadlock = DriverError("40P01")
    assert "at the same moment" in same_moment(caused(OperationalError("deadlock detected"), deadlock))
    unique = sqlite3.IntegrityError("UNIQUE constraint failed: reach_vantagepoint.name")
    assert "Nothing was saved" in same_moment(caused(IntegrityError("UNIQUE"), unique))
    # A foreign key or a check refused is a bug to see (a 500 and its traceback), not a race.
    assert same_moment(caused(IntegrityError("fk"), DriverError("23503"))) is None
    assert same_moment(caused(IntegrityError("check"), sqlite3.IntegrityError("CHECK constraint failed"))) is None
    assert same_moment(ValueError("other")) is None
