"""Where vantage points show beyond their own pages: the target form and page, runs, the port and
host pages ("Reachable from"), and the changes feed (each change's vantage point, ``?vantage=``).

Views are built through the real ingest (``tests.factories.scan``).
"""

import json

import pytest
from django.urls import reverse

from inventory.models import AuditEntry, Host, Service, Zone
from reach.models import VantagePoint
from scans.models import ScanTarget
from tests.factories import scan
from tests.test_targets_pages import form_data
from tests.test_vantage_pages import A, body

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def office():
    return VantagePoint.objects.create(name="office-lan")


@pytest.fixture
def home():
    return Zone.default().home_vantage


# --- targets and runs ---------------------------------------------------------------------------


def test_the_target_form_saves_where_it_is_scanned_from(as_admin, office, home):
    dmz = VantagePoint.objects.create(name="dmz")
    page = body(as_admin, reverse("target-create"))
    assert "Scan from" in page and "None chosen: the zone&#x27;s home" in page
    assert f"{home.name} (home of zone default)" in page

    response = as_admin.post(reverse("target-create"), form_data(vantage_points=[office.pk, dmz.pk]))
    target = ScanTarget.objects.get()
    assert response.status_code == 302
    assert sorted(target.vantage_points.values_list("name", flat=True)) == ["dmz", "office-lan"]
    assert sorted(AuditEntry.objects.get(action="target.create").after["vantage_points"]) == sorted(
        [str(office.pk), str(dmz.pk)]
    )
    page = body(as_admin, target.get_absolute_url())
    assert office.get_absolute_url() in page and dmz.get_absolute_url() in page and "one run from each" in page

    as_admin.post(reverse("target-edit", args=[target.public_id]), form_data())
    assert not target.vantage_points.exists()
    page = body(as_admin, target.get_absolute_url())
    assert home.get_absolute_url() in page and "the zone's home: no vantage point chosen" in page


def test_an_unknown_vantage_point_in_the_target_form_is_refused_and_nothing_is_written(as_admin):
    response = as_admin.post(reverse("target-create"), form_data(vantage_points=["999999"]))
    assert response.status_code == 200 and "vantage_points" in response.context["form"].errors
    assert not ScanTarget.objects.exists()


def test_runs_show_where_they_scanned_from(as_viewer, office):
    run = scan(office, {A: {22: "open"}})
    home_run = scan(None, {A: {22: "open"}})
    page = body(as_viewer, reverse("run-list"))
    assert office.get_absolute_url() in page and home_run.vantage.get_absolute_url() in page
    assert "that vantage point's view, not the inventory" in body(as_viewer, run.get_absolute_url())
    assert "what it saw is the inventory" in body(as_viewer, home_run.get_absolute_url())


# --- the port and host pages ----------------------------------------------------------------------


def test_the_port_page_says_from_where_the_port_is_reachable(as_viewer, office, home):
    dmz = VantagePoint.objects.create(name="dmz")
    VantagePoint.objects.create(name="lab")
    scan(None, {A: {22: ("open", "ssh")}})
    scan(office, {A: {22: "filtered"}})  # never seen open from the office: no row
    scan(dmz, {A: {22: ("open", "ssh")}})
    scan(dmz, {}, silent=[A])  # then A stopped answering the dmz: its row is stale
    service = Service.objects.get(host__address=A, port=22)

    response = as_viewer.get(service.get_absolute_url())
    page = response.content.decode()
    assert "Reachable from" in page
    section = page[page.index("Reachable from") :]
    home_at, dmz_at, office_at = (section.index(f">{name}</a>") for name in (home.name, "dmz", "office-lan"))
    assert home_at < dmz_at < office_at
    assert "the inventory" in section[home_at:dmz_at] and "state-open" in section[home_at:dmz_at]
    assert "state-open" in section[dmz_at:office_at] and ">stale</span>" in section[dmz_at:office_at]
    assert "never seen open from here" in section[office_at:] and "scanned the host" in section[office_at:]
    assert "Never scanned this host, so never this port:" in section and ">lab</a>" in section


def test_a_port_only_another_vantage_point_saw_open_has_a_page(as_viewer, office):
    scan(None, {A: {22: "open"}})
    scan(office, {A: {22: "open", 5432: ("open", "postgresql")}})
    host = Host.objects.get(address=A)
    response = as_viewer.get(reverse("port-detail", args=[host.public_id, "tcp", 5432]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "not seen open from the home of zone default" in page
    assert "exposure opened" in page and "from office-lan" in page
    assert as_viewer.get(reverse("port-detail", args=[host.public_id, "tcp", 5433])).status_code == 404


def test_the_host_page_has_a_line_per_vantage_point(as_viewer, office, home):
    VantagePoint.objects.create(name="lab")
    scan(None, {A: {22: "open"}})
    scan(office, {A: {22: "open"}})
    scan(office, {}, silent=[A])
    page = body(as_viewer, Host.objects.get(address=A).get_absolute_url())
    line = page[page.index("Seen from") :]
    assert f'>{home.name}</a> <span class="muted">(home)</span> <span class="status status-up">' in line
    assert '>office-lan</a> <span class="status status-unreachable">unreachable</span>' in line
    assert "Never scanned from" in line and ">lab</a>" in line


# --- the changes feed ------------------------------------------------------------------------------


def test_changes_say_where_they_were_seen_from_and_filter_by_it(as_viewer, office, home):
    scan(None, {A: {22: "open"}})
    scan(office, {A: {22: "open"}})
    page = body(as_viewer, reverse("change-list"))
    assert '>exposure opened</span> <a class="muted" href="/vantage-points/office-lan/">from office-lan</a>' in page
    assert f'>port opened</span> <a class="muted" href="/vantage-points/{home.name}/">from {home.name}</a>' in page

    only = as_viewer.get(reverse("change-list"), {"vantage": "office-lan"}).context["page"].object_list
    assert {(change.kind, change.vantage_id) for change in only} == {("exposure_opened", office.pk)}
    response = as_viewer.get(reverse("change-list"), {"vantage": "nowhere"})
    assert not response.context["page"].object_list and response.context["filter"].errors
    assert "Seen from" in response.content.decode()


def test_the_changes_export_names_the_vantage_point(as_viewer, office):
    scan(office, {A: {22: "open"}})
    response = as_viewer.get(reverse("change-list"), {"format": "json", "vantage": "office-lan"})
    rows = json.loads(b"".join(response.streaming_content))
    assert {(row["kind"], row["vantage"]) for row in rows} == {
        ("host_discovered", "office-lan"),
        ("exposure_opened", "office-lan"),
    }
