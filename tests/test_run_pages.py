"""The run page: live progress while a run goes, one reload when it ends."""

import pytest

from inventory.models import Zone
from scans.choices import RunStatus
from scans.models import ScanRun

pytestmark = pytest.mark.django_db


def make_run(status):
    return ScanRun.objects.create(
        zone=Zone.default(), trigger="manual", targets="127.0.0.1", status=status, hosts_total=4
    )


def test_a_running_run_polls_its_progress_panel(as_viewer):
    run = make_run(RunStatus.RUNNING)
    page = as_viewer.get(run.get_absolute_url()).content.decode()
    assert 'hx-trigger="every 2s"' in page

    partial = as_viewer.get(run.get_absolute_url(), headers={"HX-Request": "true"})
    assert "<html" not in partial.content.decode()
    assert "HX-Refresh" not in partial.headers


def test_a_finished_run_stops_polling_and_reloads_once(as_viewer):
    run = make_run(RunStatus.SUCCEEDED)
    assert "hx-trigger" not in as_viewer.get(run.get_absolute_url()).content.decode()
    partial = as_viewer.get(run.get_absolute_url(), headers={"HX-Request": "true"})
    assert partial.headers["HX-Refresh"] == "true"


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (RunStatus.SUCCEEDED, "None: every host and port this run looked at is as the inventory already had it."),
        (RunStatus.RUNNING, "No changes yet."),
        (RunStatus.FAILED, "No changes yet."),
    ],
)
def test_a_run_without_changes_says_what_that_means(as_viewer, status, says):
    page = as_viewer.get(make_run(status).get_absolute_url()).content.decode()
    assert says in page


def test_host_page_offers_scan_now_through_each_covering_target_to_admins(as_admin, client, viewer):
    from django.utils import timezone

    from inventory.models import Host
    from scans.models import ScanProfile, ScanTarget

    now = timezone.now()
    host = Host.objects.create(
        zone=Zone.default(), address="127.0.0.5", first_seen=now, last_seen=now, last_scanned=now
    )
    quick = ScanProfile.objects.get(slug="quick")
    ScanTarget.objects.create(name="loopback", zone=host.zone, targets="127.0.0.0/29", profile=quick)
    ScanTarget.objects.create(name="elsewhere", zone=host.zone, targets="127.0.1.0/29", profile=quick)

    page = as_admin.get(host.get_absolute_url()).content.decode()
    assert "Scan now (loopback)" in page and "Scan now (elsewhere)" not in page

    client.force_login(viewer)
    assert "Scan now" not in client.get(host.get_absolute_url()).content.decode()
