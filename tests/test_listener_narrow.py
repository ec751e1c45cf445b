"""The host's own view on a 390-pixel-wide phone: nothing wider than the screen, hostile text escaped.

A real browser (headless Chromium, as tests/test_browser.py) against a live
server, logged in as a reviewer (the upload link shown). Screenshots go with
the browser test's (SCREENSHOT_DIR).
"""

import shutil

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from inventory.models import Host
from inventory.ports import PortSet
from listeners import intake, reports
from listeners.choices import ReportSource
from portwatch.roles import GROUP_NAMES, Role
from tests.factories import scan
from tests.phone import overflowing_pages, shoot
from tests.test_browser import CHROMIUM

pytestmark = pytest.mark.django_db(transaction=True)
ADDRESS = "198.18.61.2"
HOSTILE = '<img src=x onerror="document.title=1">a-very-long-daemon-name-without-any-break-in-it'


@pytest.fixture
def world(db):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (make test does this as root)")
    scan(None, {ADDRESS: {22: "open", 443: "open", 8080: "filtered"}}, probed={"tcp": PortSet.parse("1-10000")})
    lines = [
        'tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=700,fd=3))',
        f'tcp LISTEN 0 128 [fe80::1234:5678:9abc:def0%enp0s31f6]:8080 [::]:* users:(("{HOSTILE}",pid=9,fd=3))',
        f'tcp LISTEN 0 128 {ADDRESS}:8080 0.0.0.0:* users:(("{HOSTILE}",pid=9,fd=3))',
        'tcp LISTEN 0 128 127.0.0.1:5432 0.0.0.0:* users:(("postgres",pid=800,fd=5))',
        "tcp LISTEN 0 128 0.0.0.0:45000 0.0.0.0:*",
    ]
    reports.take(intake.find_host(ADDRESS), intake.read("\n".join(lines).encode()), source=ReportSource.API)
    user = User.objects.create(username="rita")
    user.groups.add(Group.objects.get(name=GROUP_NAMES[Role.REVIEWER]))
    return Host.objects.get(address=ADDRESS)


def test_the_own_view_pages_fit_a_390_pixel_screen(live_server, world, monkeypatch):
    # (The overview and the lists are wider than a phone before and after this view: issue 18's.)
    pages = {
        "host": world.get_absolute_url(),
        "port": reverse("port-detail", args=[world.public_id, "tcp", 8080]),
        "upload": f"{reverse('listener-upload')}?host={ADDRESS}",
    }

    def refused(page, overflowing):
        # A bad report pasted: the page says why, at phone size too.
        page.goto(pages["upload"])
        page.fill("textarea[name=text]", "<b>not a report</b>")
        page.click("form.form button[type=submit]")  # not the top bar's Log out
        assert "not a report PortWatch reads" in page.inner_text("body")
        shoot(page, "listeners-upload-refused", overflowing)
        for name in ("host", "port"):
            page.goto(pages[name])
            assert page.title() != "1", f"{name}: the host's text ran as markup"
            assert "shielded only by a firewall" in page.inner_text("body"), name

    assert overflowing_pages(live_server, monkeypatch, "rita", pages, "listeners", then=refused) == {}
