"""Every page on a 390-pixel-wide phone, in a real browser: none wider than the screen.

Headless Chromium (as tests/test_browser.py) against a live server, logged in
as an admin (the widest pages: every button shown), with a little of
everything in the inventory, long names included. The navigation folds behind
its Menu button, marks the current page, and the skip link and "Log out" can
be reached. Screenshots go with the browser test's (SCREENSHOT_DIR): each page
at 390 px, the menu open, and the overview in dark mode.
"""

import shutil

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from alerts.choices import ChannelKind, NotificationStatus
from alerts.models import AlertRule, Channel, Mute, Notification
from inventory.models import Host, PortRule, Zone
from portwatch.roles import GROUP_NAMES, Role
from scans.models import ScanProfile, ScanRun, ScanTarget
from tests.factories import observe
from tests.phone import WIDTH, overflowing_pages, shoot
from tests.test_browser import CHROMIUM, SCREENSHOT_DIR
from tests.tls_lab import make_certificate, put_certificate

pytestmark = pytest.mark.django_db(transaction=True)

LONG = "a-rather-long-name-that-a-host-announced-without-any-spaces-in-it.internal.example"


@pytest.fixture
def world(db):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (make test does this as root)")
    observe(
        {f"198.18.60.{n}": [22, (443, "https", "nginx 1.25.3 with a long product string"), 6379] for n in range(1, 6)},
        hostnames={"198.18.60.1": [LONG]},
    )
    zone = Zone.default()
    target = ScanTarget.objects.create(
        name="payments-network-with-a-long-name", zone=zone, targets="198.18.60.0/29",
        profile=ScanProfile.objects.get(slug="quick"),
    )  # fmt: skip
    ScanRun.objects.create(target=target, zone=zone, trigger="manual", targets="198.18.60.0/29")
    PortRule.objects.create(
        scope="global", port_start=22, port_end=22, decision="approved",
        justification="SSH from the bastion hosts only, as agreed with the network team " * 2,
    )  # fmt: skip
    channel = Channel.objects.create(name="security-team-webhook-with-long-name", kind=ChannelKind.LOG)
    Notification.objects.create(channel=channel, dedupe_key="n1", status=NotificationStatus.FAILED, last_error=LONG)
    AlertRule.objects.create(name="Redis opened anywhere in production")
    Mute.objects.create(ends_at=timezone.now() + timezone.timedelta(hours=1), reason="maintenance window " * 4)
    # A certificate on 443 whose names a host chose (long, no spaces): the Certificates page and the port page.
    put_certificate(
        Host.objects.get(address="198.18.60.1").services.get(port=443),
        make_certificate("web-1.payments.internal", days_left=12, sans=(LONG, f"www.{LONG}"), rsa_bits=1024),
    )
    user = User.objects.create(username="nora")
    user.groups.add(Group.objects.get(name=GROUP_NAMES[Role.ADMIN]))
    return target


def _pages(target) -> dict:
    host = Host.objects.get(address="198.18.60.1")
    run = ScanRun.objects.filter(target=target).first()
    notification = Notification.objects.get(dedupe_key="n1")
    pages = {
        name: reverse(name)
        for name in (
            "overview", "host-list", "port-list", "review-queue", "rule-list", "rule-create", "assignment-list",
            "assignment-create", "zone-list", "zone-create", "audit-list", "risk-list", "risk-create", "target-list",
            "target-create", "change-list", "run-list", "profile-list", "profile-create", "scope", "import",
            "notification-list", "channel-list", "channel-create", "alert-rule-list", "alert-rule-create",
            "mute-list", "mute-create", "listener-upload", "password_change", "api-token", "lockout-list",
            "vantage-list", "exposure-matrix", "segmentation-rule-list", "personal-settings", "certificate-list",
        )
    }  # fmt: skip
    pages.update(
        {
            "host-detail": host.get_absolute_url(),
            "host-edit": reverse("host-edit", args=[host.public_id]),
            "port-detail": reverse("port-detail", args=[host.public_id, "tcp", 443]),
            "target-detail": reverse("target-detail", args=[target.public_id]),
            "target-edit": reverse("target-edit", args=[target.public_id]),
            "run-detail": reverse("run-detail", args=[run.public_id]),
            "notification-detail": reverse("notification-detail", args=[notification.public_id]),
            "channel-detail": reverse("channel-detail", args=[notification.channel.public_id]),
            "zone-edit": reverse("zone-edit", args=["default"]),
            "profile-edit": reverse("profile-edit", args=["quick"]),
        }
    )
    return pages


def _menu_and_marks(page, overflowing):
    """At phone size: the menu folds and opens, the current page is marked, the rest is reachable."""
    page.goto(reverse("host-list"))
    nav = page.locator("#site-nav")
    toggle = page.locator(".menu-toggle")
    assert toggle.is_visible() and not nav.is_visible(), "the navigation is folded behind Menu"
    assert page.locator("button.logout").is_visible(), "Log out is on the first screen"
    box = page.locator("button.logout").bounding_box()
    assert box["x"] + box["width"] <= WIDTH
    toggle.click()
    assert nav.is_visible() and toggle.get_attribute("aria-expanded") == "true"
    current = nav.locator('a[aria-current="page"]')
    assert current.count() == 1 and current.inner_text() == "Hosts"
    # A link is big enough to tap (about 44 CSS pixels asked; rows of at least 30 here).
    assert nav.get_by_role("link", name="Ports").bounding_box()["height"] >= 30
    shoot(page, "narrow-menu-open", overflowing)
    page.keyboard.press("Escape")
    assert not nav.is_visible()
    # The first Tab reaches the skip link, which lands on the page's content.
    page.goto(reverse("host-list"))
    page.keyboard.press("Tab")
    skip = page.locator("a.skip")
    assert skip.evaluate("element => element === document.activeElement") and skip.is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # No hover on a phone: a stacked row's relative time writes its exact time out.
    shown = page.evaluate("getComputedStyle(document.querySelector('table.stacks time[title]'), '::after').content")
    assert "UTC" in shown, shown
    # A host's page marks Hosts too: it is under the list.
    page.goto(Host.objects.get(address="198.18.60.1").get_absolute_url())
    assert page.locator('#site-nav a[aria-current="page"]').inner_text() == "Hosts"
    # Dark mode follows the system's setting.
    page.emulate_media(color_scheme="dark")
    page.goto(reverse("overview"))
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(16, 21, 30)", background
    page.screenshot(path=str(SCREENSHOT_DIR / f"narrow-overview-dark-{WIDTH}.png"), full_page=True)


def test_every_page_fits_a_390_pixel_screen_and_the_menu_folds(live_server, world, monkeypatch):
    pages = _pages(world)
    overflowing = overflowing_pages(live_server, monkeypatch, "nora", pages, "narrow", then=_menu_and_marks)
    assert overflowing == {}
