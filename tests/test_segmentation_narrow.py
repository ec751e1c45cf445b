"""The segmentation and exposure pages on a 390-pixel-wide phone: nothing wider than the screen.

A real browser (headless Chromium, as tests/test_browser.py) against a live
server, logged in as an admin (the widest pages: every button shown).
Screenshots go with the browser test's (SCREENSHOT_DIR).
"""

import shutil

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from inventory.ports import PortSet
from portwatch.roles import GROUP_NAMES, Role
from reach import segmentation
from reach.models import SegmentationRule, VantagePoint
from tests.factories import scan
from tests.test_browser import CHROMIUM, SCREENSHOT_DIR

pytestmark = pytest.mark.django_db(transaction=True)

WIDTH = 390


@pytest.fixture
def world(db):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (make test does this as root)")
    office = VantagePoint.objects.create(name="office-lan-long-vantage-name")
    rule = SegmentationRule.objects.create(
        scope="cidr", cidr="198.18.48.0/24", protocol="any", port_start=1, port_end=65535, mode="deny",
        justification="Nothing in the payment network may be reached from the office LAN, whatever port " * 3,
        owner="network-security-team", ticket="https://tickets.example/SEC-12345/a/rather/long/path",
    )  # fmt: skip
    rule.vantage_points.set([office])
    segmentation.rule_changed(rule)
    scan(
        office,
        {f"198.18.48.{n}": {5432: "open", 8443: "open"} for n in range(1, 8)},
        probed={"tcp": PortSet.parse("1-65535")},
    )
    user = User.objects.create(username="nora")
    user.groups.add(Group.objects.get(name=GROUP_NAMES[Role.ADMIN]))
    return rule


def test_the_segmentation_pages_fit_a_390_pixel_screen(live_server, world, monkeypatch):
    from playwright.sync_api import sync_playwright

    pages = {
        "rules": reverse("segmentation-rule-list"),
        "rule": world.get_absolute_url(),
        "rule-form": reverse("segmentation-rule-edit", args=[world.public_id]),
        "violations": reverse("segmentation-violation-list"),
        "exposure": reverse("exposure-matrix"),
        "exposure-by-tag": f"{reverse('exposure-matrix')}?rows=tag",
        "exposure-cell": f"{reverse('exposure-cell', args=['office-lan-long-vantage-name'])}?zone=default",
        "exposure-violations": (
            f"{reverse('exposure-cell', args=['office-lan-long-vantage-name'])}?zone=default&violations=1"
        ),
    }
    # Logged in as a browser would be, by its session cookie (users are made before Playwright runs).
    client = Client()
    client.force_login(User.objects.get(username="nora"))
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    # The live server answers from its own thread; only for this test (a later
    # subprocess's `check --deploy` must not inherit it).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    overflowing = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        context = browser.new_context(base_url=live_server.url, viewport={"width": WIDTH, "height": 844})
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
        page = context.new_page()
        for name, url in pages.items():
            page.goto(url)
            assert page.url.endswith(url), page.url  # logged in: not sent to the login page
            width = page.evaluate("document.documentElement.scrollWidth")
            page.screenshot(path=str(SCREENSHOT_DIR / f"segmentation-{name}-390.png"), full_page=True)
            if width > WIDTH:
                overflowing[name] = width
        browser.close()
    assert overflowing == {}
