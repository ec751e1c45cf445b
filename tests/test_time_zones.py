"""Each person's time zone: chosen on their settings page, used for every time on every page they open."""

import datetime as dt
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import PersonalSettings
from alerts.models import Mute
from tests.factories import observe

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")


def test_a_person_chooses_a_time_zone_and_every_page_shows_times_in_it(as_admin, admin, client):
    observe({"198.18.61.1": [22]})
    response = as_admin.post(reverse("personal-settings"), {"time_zone": "Asia/Tokyo"})
    assert response.status_code == 302
    assert PersonalSettings.objects.get(user=admin).time_zone == "Asia/Tokyo"

    page = as_admin.get(reverse("host-list")).content.decode()
    assert 'title="Times on these pages are in this zone">Asia/Tokyo<' in page  # stated on every page
    assert "+09:00" in page  # the "seen ... ago" cells carry the time itself, in the person's zone
    overview = as_admin.get(reverse("overview")).content.decode()
    assert 'data-time-zone="Asia/Tokyo"' in overview and "Times in Asia/Tokyo." in overview

    # A time typed into a form is read in that zone too, and the form says which.
    form = as_admin.get(reverse("mute-create")).content.decode()
    assert "Times are in Asia/Tokyo" in form
    year = dt.datetime.now(dt.UTC).year + 4  # a mute must end in the future
    as_admin.post(
        reverse("mute-create"),
        {"scope": "global", "starts_at": f"{year}-01-02T09:00", "ends_at": f"{year}-01-02T10:00", "reason": "window"},
    )
    mute = Mute.objects.get(reason="window")
    assert mute.starts_at == dt.datetime(year, 1, 2, 9, 0, tzinfo=TOKYO)
    assert mute.starts_at == dt.datetime(year, 1, 2, 0, 0, tzinfo=dt.UTC)


def test_someone_who_chose_nothing_sees_the_installation_zone(as_viewer, settings):
    page = as_viewer.get(reverse("personal-settings")).content.decode()
    assert f"shown in <strong>{settings.TIME_ZONE}</strong>" in page
    assert timezone.get_current_timezone_name() == settings.TIME_ZONE  # nothing left activated by the request


def test_a_zone_that_does_not_exist_is_refused_and_nothing_is_saved(as_admin, admin):
    response = as_admin.post(reverse("personal-settings"), {"time_zone": "Mars/Olympus_Mons"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not PersonalSettings.objects.filter(user=admin).exclude(time_zone="").exists()


def test_the_zone_chosen_before_comes_back_at_the_next_login(client, reviewer):
    PersonalSettings.objects.create(user=reviewer, time_zone="America/Sao_Paulo")
    client.force_login(reviewer)  # as any login does: the form, the directory, a provider
    page = client.get(reverse("host-list")).content.decode()
    assert ">America/Sao_Paulo<" in page
