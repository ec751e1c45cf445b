"""Bad input gets a clear error and writes nothing: no row, no file, no nmap.

nmap is replaced by a wrapper that records every start, so "nmap was never
started" is a fact the test reads, not an assumption.
"""

import html
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from inventory.models import Zone
from scans.models import Change, ScanChunk, ScanProfile, ScanRun, ScanTarget
from tests.lab import LAB_PORT_SPEC

pytestmark = pytest.mark.django_db


@pytest.fixture
def nmap_log(tmp_path, settings):
    log = tmp_path / "nmap-starts.log"
    wrapper = tmp_path / "nmap"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec nmap "$@"\n')
    wrapper.chmod(0o755)
    settings.NMAP_PATH = str(wrapper)
    return log


def files_under(path: Path) -> set[Path]:
    return set(path.rglob("*")) if path.exists() else set()


def form(**overrides):
    data = {
        "name": "bad",
        "zone": Zone.default().pk,
        "targets": "127.0.0.1",
        "ports": "22",
        "profile": ScanProfile.objects.get(slug="quick").pk,
        "schedule_kind": "interval",
        "schedule_interval": "1",
        "schedule_cron": "",
        "schedule_timezone": "UTC",
        "enabled": "on",
    }
    data.update(overrides)
    return data


TARGETS = [
    ("-iL /etc/passwd", "looks like a command-line option"),
    ("127.0.0.1 -oN /tmp/x", "looks like a command-line option"),
    ("--script=x", "looks like a command-line option"),
    ("$(id)", "is not a valid"),
    ("a;b", "is not a valid"),
    ("'", "is not a valid"),
    ("0.0.0.0/0", "more than 65,536 addresses"),
    ("::/0", "more than 65,536 addresses"),
    ("169.254.169.254", "excluded from scanning"),
    ("198.51.100.7", "outside the scan scope"),
    ("198.18.0.0/15", "more than 65,536 addresses"),
    ("bücher..example", "is not a valid"),
    ("xn--zz.example", "is not a valid"),
    ("host\x00name", "Null characters are not allowed"),
]
PORTS = [
    ("0", "0 is not a port"),
    ("65536", "65536 is not a port"),
    ("0-99999", "is not a port"),
    ("80-22", "backwards range"),
    ("22,", "empty item"),
    (",".join(str(port) for port in range(1, 10_001)), "Too many port items"),
]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("targets", value, message) for value, message in TARGETS]
    + [("ports", value, message) for value, message in PORTS],
)
def test_bad_targets_and_ports_write_nothing_and_start_nothing(as_admin, nmap_log, field, value, message):
    before = files_under(django_settings.VAR_DIR)

    response = as_admin.post(reverse("target-create"), form(**{field: value}))

    assert response.status_code == 200
    assert message in html.unescape(response.content.decode())
    assert not ScanTarget.objects.exists() and not ScanRun.objects.exists() and not ScanChunk.objects.exists()
    assert not nmap_log.exists()
    assert files_under(django_settings.VAR_DIR) == before


def test_scan_now_for_an_address_outside_the_target_starts_nothing(as_admin, nmap_log):
    target = ScanTarget.objects.create(
        name="one host", zone=Zone.default(), targets="127.0.0.1", ports=LAB_PORT_SPEC,
        profile=ScanProfile.objects.get(slug="quick"),
    )  # fmt: skip
    response = as_admin.post(reverse("target-scan", args=[target.public_id]), {"address": "127.0.0.2"}, follow=True)
    assert "127.0.0.2 is not part of the target" in html.unescape(response.content.decode())
    assert not ScanRun.objects.exists()
    assert not nmap_log.exists()


def test_a_bad_xml_upload_leaves_no_file_behind(as_admin):
    from django.core.files.uploadedfile import SimpleUploadedFile

    before = files_under(django_settings.VAR_DIR)
    payload = (Path(__file__).parent / "fixtures" / "nmap" / "billion_laughs.xml").read_bytes()
    response = as_admin.post(
        reverse("import"), {"file": SimpleUploadedFile("x.xml", payload), "zone": Zone.default().pk}
    )
    assert response.status_code == 400
    assert files_under(django_settings.VAR_DIR) == before
    assert not ScanRun.objects.exists() and not Change.objects.exists()


# PostgreSQL text holds no NUL byte: a parameter with one, wherever a view would
# look it up or filter on it, is a 400 that says so (posted forms name the field: TARGETS above).
NUL_GETS = [
    "/api/exposures/?vantage=default&zone=a%00b",
    "/api/exposures/?vantage=a%00b",
    "/api/hosts/?tag=a%00b",
    "/exposure/from/default/?zone=a%00b",
    "/hosts/?q=a%00b",
    "/rules/?scope=a%00b",
    "/alerts/?channel=a%00b",
]


@pytest.mark.parametrize("url", NUL_GETS)
def test_a_nul_byte_in_a_query_parameter_is_a_clear_400(as_admin, url):
    response = as_admin.get(url)
    assert response.status_code == 400
    assert "NUL byte" in response.content.decode()
    if url.startswith("/api/"):
        assert response.json()["detail"].startswith("A parameter holds a NUL byte")


def test_a_visitor_who_is_not_logged_in_is_sent_to_the_login_page_first(client):
    response = client.get("/hosts/?q=a%00b")
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
