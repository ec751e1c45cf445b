"""Target forms: good input is saved in canonical form, bad input writes nothing."""

from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.models import Zone
from scans.models import ScanProfile, ScanRun, ScanTarget

pytestmark = pytest.mark.django_db


def form_data(**overrides):
    data = {
        "name": "office",
        "zone": Zone.default().pk,
        "targets": "127.0.0.1",
        "ports": "1-10000",
        "profile": ScanProfile.objects.get(slug="quick").pk,
        "schedule_kind": "manual",
        "schedule_interval": "",
        "schedule_cron": "",
        "schedule_timezone": "UTC",
        "enabled": "on",
    }
    data.update(overrides)
    return data


def test_admin_adds_a_target_in_canonical_form(as_admin):
    response = as_admin.post(reverse("target-create"), form_data(targets="127.0.0.2, 127.0.0.1", ports="443,80,81-90"))

    target = ScanTarget.objects.get()
    assert response.status_code == 302 and response.url == target.get_absolute_url()
    assert target.targets == "127.0.0.2\n127.0.0.1"
    assert target.ports == "80-90,443"
    assert target.next_run_at is None


def test_an_interval_schedule_starts_at_once(as_admin):
    before = timezone.now()
    as_admin.post(reverse("target-create"), form_data(schedule_kind="interval", schedule_interval="15"))
    target = ScanTarget.objects.get()
    assert target.schedule_interval == 15
    assert before <= target.next_run_at <= timezone.now()


def test_a_cron_schedule_is_read_in_its_time_zone(as_admin):
    as_admin.post(
        reverse("target-create"),
        form_data(schedule_kind="cron", schedule_cron="30  2 * * *", schedule_timezone="Europe/Paris"),
    )
    target = ScanTarget.objects.get()
    assert target.schedule_cron == "30 2 * * *"
    local = target.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) in ((2, 30), (3, 0))  # 03:00 on a spring-forward night
    assert target.next_run_at > timezone.now()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("targets", "-iL /etc/passwd", "looks like a command-line option"),
        ("targets", "127.0.0.1 $(id)", "is not a valid"),
        ("targets", "0.0.0.0/0", "more than 65,536 addresses"),
        ("ports", "80-22", "backwards range"),
        ("ports", "0", "0 is not a port"),
        ("ports", "22,", "empty item"),
        ("schedule_interval", "0", "greater than or equal to 1"),
        ("schedule_kind", "hourly", "Select a valid choice"),
        ("schedule_timezone", "Mars/Olympus", "is not a time zone name"),
        ("targets", "169.254.169.254", "is excluded from scanning"),
        ("targets", "203.0.113.5", "outside the scan scope"),
        ("targets", "127.0.0.0/8", "more than 65,536 addresses"),
        ("profile", "999999", "Select a valid choice"),
    ],
)
def test_bad_input_is_refused_with_the_reason_and_nothing_is_written(as_admin, field, value, message):
    response = as_admin.post(reverse("target-create"), form_data(**{field: value}))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ScanTarget.objects.exists()
    assert not ScanRun.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"schedule_kind": "interval"}, "schedule_interval", "Enter the number of minutes"),
        ({"schedule_kind": "cron", "schedule_cron": ""}, "schedule_cron", "Enter a cron expression"),
        ({"schedule_kind": "cron", "schedule_cron": "61 * * * *"}, "schedule_cron", "not a valid cron expression"),
        ({"schedule_kind": "cron", "schedule_cron": "* * * * * *"}, "schedule_cron", "has 6"),
    ],
)
def test_incomplete_schedules_are_refused(as_admin, fields, field, message):
    response = as_admin.post(reverse("target-create"), form_data(**fields))
    assert response.status_code == 200
    assert message in response.context["form"].errors[field][0]
    assert not ScanTarget.objects.exists()


def test_text_from_scanned_hosts_is_escaped(as_viewer):
    from django.utils import timezone

    from inventory.models import Host, Service

    now = timezone.now()
    host = Host.objects.create(
        zone=Zone.default(),
        address="127.0.0.9",
        hostnames=["<script>alert(1)</script>"],
        first_seen=now,
        last_seen=now,
        last_scanned=now,
    )
    Service.objects.create(
        host=host,
        protocol="tcp",
        port=80,
        state="open",
        product="<img src=x onerror=alert(2)>",
        first_seen=now,
        last_seen=now,
        last_changed=now,
    )
    for url in (reverse("overview"), host.get_absolute_url(), reverse("host-list")):
        page = as_viewer.get(url).content.decode()
        assert "<script>alert(1)</script>" not in page
        assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in as_viewer.get(host.get_absolute_url()).content.decode()
