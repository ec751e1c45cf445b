"""Vantage points on the pages: their list and page, admins' create, edit and delete, and where they show elsewhere.

Views are built through the real ingest (``tests.factories.scan``); liveness
comes from real heartbeat rows. Roles are swept by tests/test_access.py; the
cases here are what each page must say.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inventory.models import AuditEntry, Host, Zone
from reach import views
from reach.models import PortView, VantagePoint
from scans.models import ScanProfile, ScanTarget, WorkerHeartbeat
from tests.factories import scan

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

A, B, C = "198.18.40.1", "198.18.40.2", "198.18.40.3"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def office():
    return VantagePoint.objects.create(name="office-lan", description="a laptop on the office Wi-Fi")


@pytest.fixture
def home():
    return Zone.default().home_vantage


def beat(name, queues, seconds_ago=0):
    return WorkerHeartbeat.objects.create(
        name=name, queues=queues, seen_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


def body(client, url, **query) -> str:
    response = client.get(url, query)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


# --- the list ---------------------------------------------------------------------------


def test_the_top_bar_links_to_vantage_points(as_viewer):
    assert f'href="{reverse("vantage-list")}"' in body(as_viewer, reverse("overview"))


def test_the_list_shows_each_vantage_points_home_queue_workers_and_status(as_viewer, office, home):
    dmz = VantagePoint.objects.create(name="dmz")
    beat("vantage-office-lan@scanner1", ["scan-from.office-lan"])
    dead = beat("vantage-dmz@old", ["scan-from.dmz"], seconds_ago=3600)

    response = as_viewer.get(reverse("vantage-list"))
    rows = {vantage.name: vantage for vantage in response.context["object_list"]}
    assert set(rows) == {home.name, "office-lan", "dmz"}
    assert rows["office-lan"].liveness.worker_names == ["vantage-office-lan@scanner1"]
    page = response.content.decode()
    assert "scan-from.office-lan" in page and f"scan.{Zone.default().name}" in page
    assert f"zone {Zone.default().name}" in page  # the home's zone; the others say "—"
    assert "—" in page
    assert 'class="status status-listening"' in page and "vantage-office-lan@scanner1" in page
    assert f'>silent</span> <span class="muted">since {timezone.localtime(dead.seen_at):%Y-%m-%d %H:%M}' in page
    # The home: no worker here.
    assert '>silent</span> <span class="muted">no worker has ever consumed it</span>' in page
    assert dmz.get_absolute_url() in page


def test_the_list_pages_by_keyset(as_viewer, monkeypatch):
    monkeypatch.setattr(views.VantageListView, "paginate_by", 2)
    for name in ("a1", "a2", "a3"):
        VantagePoint.objects.create(name=name)
    first = as_viewer.get(reverse("vantage-list"))
    assert [v.name for v in first.context["object_list"]] == ["a1", "a2"]
    second = as_viewer.get(reverse("vantage-list"), {"cursor": first.context["page_obj"].next_cursor})
    assert [v.name for v in second.context["object_list"]] == ["a3", "default"]


# --- a vantage point's page -------------------------------------------------------------


def test_its_page_lists_the_open_ports_seen_from_there_and_marks_the_stale_ones(as_viewer, office):
    scan(office, {A: {22: ("open", "ssh"), 80: "closed"}, B: {5432: ("open", "postgresql")}})
    scan(office, {A: {22: "open"}}, silent=[B])  # B stops answering: its port is kept, stale

    response = as_viewer.get(office.get_absolute_url())
    rows = response.context["page"].object_list
    assert [(row.host.address, row.port, row.stale) for row in rows] == [(A, 22, False), (B, 5432, True)]
    page = response.content.decode()
    assert "postgresql" in page and 'class="stale"' in page and ">stale</span>" in page
    assert reverse("port-detail", args=[Host.objects.get(address=B).public_id, "tcp", 5432]) in page
    assert "The host stopped answering this vantage point" in page


def test_its_page_filters_by_port_and_zone(as_viewer, office):
    dc1 = Zone.objects.create(name="dc1")
    scan(office, {A: {22: "open", 443: "open"}, B: {22: "open"}})
    scan(office, {C: {22: "open"}}, zone=dc1)

    def shown(**query):
        response = as_viewer.get(office.get_absolute_url(), query)
        return sorted((row.host.zone.name, row.host.address, row.port) for row in response.context["page"].object_list)

    assert shown(port="443") == [("default", A, 443)]
    assert shown(zone="dc1") == [("dc1", C, 22)]
    assert shown(port="22", zone="default") == [("default", A, 22), ("default", B, 22)]
    response = as_viewer.get(office.get_absolute_url(), {"port": "70000"})
    assert not response.context["page"].object_list and response.context["filter"].errors


def test_its_page_lists_the_hosts_that_do_not_answer_it(as_viewer, office):
    scan(office, {A: {22: "open"}, B: {}})
    scan(office, {A: {22: "open"}}, silent=[B])
    response = as_viewer.get(office.get_absolute_url(), {"show": "hosts"})
    assert [row.host.address for row in response.context["page"].object_list] == [B]
    assert "Unreachable hosts" in response.content.decode()


def test_its_lists_page_by_keyset_and_cost_the_same_for_a_few_rows_or_many(as_viewer, office, monkeypatch):
    monkeypatch.setattr(views.VantageDetailView, "paginate_by", 3)
    scan(office, {f"198.18.41.{i}": {22: "open"} for i in range(1, 3)})
    with CaptureQueriesContext(connection) as few:
        as_viewer.get(office.get_absolute_url())
    scan(office, {f"198.18.41.{i}": {22: "open", 80: "open"} for i in range(1, 8)})
    with CaptureQueriesContext(connection) as many:
        first = as_viewer.get(office.get_absolute_url())
    assert len(few) == len(many)

    seen, cursor = [], None
    while True:
        response = as_viewer.get(office.get_absolute_url(), {"cursor": cursor} if cursor else {})
        seen += [(row.host.address, row.port) for row in response.context["page"].object_list]
        cursor = response.context["page"].next_cursor
        if cursor is None:
            break
    assert len(seen) == 14 == len(set(seen))
    assert "Next →" in first.content.decode()


def test_a_silent_vantage_points_page_says_its_view_is_stale_not_closed(as_viewer, office):
    scan(office, {A: {22: "open"}})
    page = body(as_viewer, office.get_absolute_url())
    assert "stale, not closed" in page and "python3 manage.py run_worker --vantage office-lan" in page

    beat("vantage-office-lan@scanner1", ["scan-from.office-lan"])
    page = body(as_viewer, office.get_absolute_url())
    assert "stale, not closed" not in page and "vantage-office-lan@scanner1" in page and ">listening<" in page


def test_a_homes_page_links_to_the_inventory_instead_of_repeating_it(as_viewer, home):
    scan(None, {A: {22: "open"}})
    response = as_viewer.get(home.get_absolute_url())
    page = response.content.decode()
    assert "page" not in response.context
    assert f"{reverse('port-list')}?zone={Zone.default().name}" in page
    assert f"{reverse('host-list')}?zone={Zone.default().name}&amp;status=unreachable" in page


def test_its_page_names_the_targets_scanned_from_there(as_viewer, office, home):
    profile = ScanProfile.objects.get(slug="quick")
    chosen = ScanTarget.objects.create(name="office view", zone=Zone.default(), targets=A, profile=profile)
    chosen.vantage_points.set([office])
    ScanTarget.objects.create(name="plain", zone=Zone.default(), targets=B, profile=profile)
    assert [t.name for t in as_viewer.get(office.get_absolute_url()).context["targets"]] == ["office view"]
    assert [t.name for t in as_viewer.get(home.get_absolute_url()).context["targets"]] == ["plain"]


def test_an_unknown_vantage_point_is_a_404(as_viewer):
    assert as_viewer.get(reverse("vantage-detail", args=["nowhere"])).status_code == 404


def test_text_from_scanned_hosts_is_escaped_on_every_page_that_shows_a_view(as_viewer, office):
    scan(office, {A: {8080: ("open", HOSTILE)}})
    host = Host.objects.get(address=A)
    urls = [
        office.get_absolute_url(),
        reverse("port-detail", args=[host.public_id, "tcp", 8080]),
        host.get_absolute_url(),
        reverse("change-list"),
    ]
    for url in urls:
        page = body(as_viewer, url)
        assert HOSTILE not in page, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body(as_viewer, office.get_absolute_url())


def test_what_people_typed_is_escaped_too(as_viewer):
    vantage = VantagePoint.objects.create(name="lab", description=HOSTILE)
    for url in (reverse("vantage-list"), vantage.get_absolute_url()):
        page = body(as_viewer, url)
        assert HOSTILE not in page and "&lt;script&gt;" in page


# --- create, edit, delete (admins) -----------------------------------------------------------


def test_an_admin_creates_a_vantage_point_and_the_audit_log_records_it(as_admin, admin):
    response = as_admin.post(reverse("vantage-create"), {"name": "office-lan", "description": "the office"})
    vantage = VantagePoint.objects.get(name="office-lan")
    assert response.status_code == 302 and response.url == vantage.get_absolute_url()
    assert (vantage.queue, vantage.is_home) == ("scan-from.office-lan", False)
    entry = AuditEntry.objects.get(action="vantage.create")
    assert (entry.actor, entry.object_repr, entry.after["name"]) == (admin, "office-lan", "office-lan")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("office-lan", "The name “office-lan” is taken by another vantage point"),
        ("default", "The name “default” is taken by the home of zone default"),
        ("new", "“new” is reserved"),
        ("office lan", "Enter a valid “slug”"),
        ("", "This field is required"),
        ("x" * 64, "at most 63 characters"),
    ],
)
def test_a_bad_or_taken_name_is_refused_clearly_and_nothing_is_written(as_admin, office, name, message):
    before = set(VantagePoint.objects.values_list("name", flat=True))
    response = as_admin.post(reverse("vantage-create"), {"name": name, "description": "x"})
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors["name"])
    assert set(VantagePoint.objects.values_list("name", flat=True)) == before
    assert not AuditEntry.objects.exists()


def test_renaming_moves_its_queue_and_says_to_restart_its_workers(as_admin, office):
    response = as_admin.post(
        reverse("vantage-edit", args=["office-lan"]), {"name": "office-wifi", "description": "moved"}, follow=True
    )
    office.refresh_from_db()
    assert (office.name, office.queue) == ("office-wifi", "scan-from.office-wifi")
    page = response.content.decode()
    assert "Workers started for “office-lan” still consume scan-from.office-lan" in page
    entry = AuditEntry.objects.get(action="vantage.update")
    assert (entry.before["name"], entry.after["name"]) == ("office-lan", "office-wifi")


def test_a_home_keeps_its_name_but_its_description_can_change(as_admin, home):
    response = as_admin.get(reverse("vantage-edit", args=[home.name]))
    assert response.context["form"].fields["name"].disabled
    # The browser sends no disabled field; a request that renames it anyway is refused.
    response = as_admin.post(reverse("vantage-edit", args=[home.name]), {"name": "elsewhere", "description": "x"})
    assert "it keeps its name (it goes with its zone)" in response.context["form"].errors["name"][0]
    as_admin.post(reverse("vantage-edit", args=[home.name]), {"description": "our DC"})
    home.refresh_from_db()
    assert (home.name, home.description, home.is_home) == (Zone.default().name, "our DC", True)


def test_a_home_cannot_be_deleted(as_admin, home):
    response = as_admin.post(reverse("vantage-delete", args=[home.name]), follow=True)
    assert VantagePoint.objects.filter(pk=home.pk).exists()
    assert "is the home of zone default" in response.content.decode()
    assert not AuditEntry.objects.filter(action="vantage.delete").exists()


def test_a_vantage_point_that_has_scanned_cannot_be_deleted_and_says_why(as_admin, office):
    scan(office, {A: {22: "open"}})
    response = as_admin.post(reverse("vantage-delete", args=["office-lan"]), follow=True)
    assert response.status_code == 200
    assert "has scanned: its runs and changes name it" in response.content.decode()
    assert VantagePoint.objects.filter(name="office-lan").exists() and PortView.objects.exists()
    assert not AuditEntry.objects.filter(action="vantage.delete").exists()


def test_a_vantage_point_a_target_scans_from_cannot_be_deleted(as_admin, office):
    target = ScanTarget.objects.create(
        name="office view", zone=Zone.default(), targets=A, profile=ScanProfile.objects.get(slug="quick")
    )
    target.vantage_points.set([office])
    response = as_admin.post(reverse("vantage-delete", args=["office-lan"]), follow=True)
    assert "Targets are scanned from “office-lan”: “office view”" in response.content.decode()
    assert list(target.vantage_points.all()) == [office]


def test_an_unused_vantage_point_is_deleted_and_audited(as_admin, office):
    response = as_admin.post(reverse("vantage-delete", args=["office-lan"]))
    assert response.status_code == 302 and response.url == reverse("vantage-list")
    assert not VantagePoint.objects.filter(name="office-lan").exists()
    assert AuditEntry.objects.get(action="vantage.delete").before["name"] == "office-lan"


@pytest.mark.parametrize("persona", ["viewer", "reviewer"])
def test_readers_see_no_edit_buttons_and_cannot_write(client, office, persona, request):
    client.force_login(request.getfixturevalue(persona))
    page = body(client, office.get_absolute_url())
    assert reverse("vantage-edit", args=["office-lan"]) not in page
    assert reverse("vantage-delete", args=["office-lan"]) not in page
    assert reverse("vantage-create") not in body(client, reverse("vantage-list"))
    assert client.post(reverse("vantage-delete", args=["office-lan"])).status_code == 403
    assert client.post(reverse("vantage-create"), {"name": "x"}).status_code == 403
    assert VantagePoint.objects.filter(name="office-lan").exists() and not VantagePoint.objects.filter(name="x")


def test_admins_see_edit_and_delete_but_no_delete_for_a_home(as_admin, office, home):
    page = body(as_admin, office.get_absolute_url())
    assert (
        reverse("vantage-edit", args=["office-lan"]) in page and reverse("vantage-delete", args=["office-lan"]) in page
    )
    page = body(as_admin, home.get_absolute_url())
    assert reverse("vantage-edit", args=[home.name]) in page and reverse("vantage-delete", args=[home.name]) not in page


def test_a_remote_vantage_point_says_so_and_how_its_scanners_start(as_viewer, office):
    office.remote = True
    office.save()
    page = body(as_viewer, office.get_absolute_url())
    assert ">remote</span>" in page and "manage.py scanner_key office-lan" in page
    assert "PORTWATCH_SCANNER_VANTAGE=office-lan python3 manage.py run_scanner" in page  # silent: how to start one
    assert office.key not in page
    # Its scanners' signed heartbeats are recorded as workers of its queue.
    beat("scanner-office-lan@dmz-box", [office.queue])
    assert ">listening<" in body(as_viewer, office.get_absolute_url())
    assert ">remote</span>" in body(as_viewer, reverse("vantage-list"))
