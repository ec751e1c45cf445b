"""Scan profiles: vetted option sets; nothing typed reaches nmap."""

import pytest
from django.urls import reverse

from inventory.ports import PortSet
from scans.models import ScanProfile
from scans.profiles import nmap_options

pytestmark = pytest.mark.django_db


def profile_data(**overrides):
    data = {
        "name": "Web, fast",
        "slug": "web-fast",
        "description": "",
        "scan_type": "tcp",
        "port_scope": "top",
        "top_ports": "200",
        "timing": "T4",
        "max_retries": "1",
        "scripts": ["http-title", "ssl-cert"],
    }
    data.update(overrides)
    return data


def test_builtin_profiles_build_the_documented_options():
    quick = ScanProfile.objects.get(slug="quick")
    assert nmap_options(quick, None, privileged=True, host_timeout=60) == [
        "-sS", "--top-ports", "100", "-T4", "--max-retries", "2", "--host-timeout", "60s", "-n",
    ]  # fmt: skip
    assert nmap_options(quick, PortSet.parse("22,80"), privileged=False, host_timeout=60)[:3] == ["-sT", "-p", "22,80"]
    services = ScanProfile.objects.get(slug="services")
    assert "-sV" in nmap_options(services, None, privileged=True, host_timeout=60)
    udp = ScanProfile.objects.get(slug="udp")
    assert nmap_options(udp, None, privileged=True, host_timeout=60)[0] == "-sU"


def test_admin_composes_a_profile_with_allowlisted_scripts(as_admin):
    response = as_admin.post(reverse("profile-create"), profile_data())
    assert response.status_code == 302
    profile = ScanProfile.objects.get(slug="web-fast")
    assert not profile.builtin
    assert nmap_options(profile, None, privileged=True, host_timeout=60)[-1] == "--script=http-title,ssl-cert"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"scripts": ["vuln"]}, "scripts"),
        ({"scripts": ["http-title; rm -rf /"]}, "scripts"),
        ({"scan_type": "-sS --script=exploit"}, "scan_type"),
        ({"timing": "T5"}, "timing"),
        ({"top_ports": "0"}, "top_ports"),
        ({"max_retries": "99"}, "max_retries"),
        ({"scan_type": "udp", "port_scope": "all"}, "port_scope"),
    ],
)
def test_anything_outside_the_vetted_options_is_refused(as_admin, overrides, field):
    response = as_admin.post(reverse("profile-create"), profile_data(**overrides))
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not ScanProfile.objects.filter(slug="web-fast").exists()


def test_builtin_profiles_cannot_be_edited(as_admin):
    assert as_admin.get(reverse("profile-edit", args=["quick"])).status_code == 404


def test_a_profile_tampered_in_the_database_is_refused_at_build_time():
    profile = ScanProfile.objects.create(slug="tampered", name="t", scripts=["exploit-all"])
    with pytest.raises(ValueError, match="outside the allowlist"):
        nmap_options(profile, None, privileged=True, host_timeout=60)
