"""The segmentation and exposure pages on a 390-pixel-wide phone: nothing wider than the screen.

A real browser (headless Chromium, as tests/test_browser.py) against a live
server, logged in as an admin (the widest pages: every button shown).
Screenshots go with the browser test's (SCREENSHOT_DIR).
"""

import shutil

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from inventory.ports import PortSet
from portwatch.roles import GROUP_NAMES, Role
from reach import segmentation, segmentation_writes
from reach.models import SegmentationRule, VantagePoint
from tests.factories import scan
from tests.phone import overflowing_pages
from tests.test_browser import CHROMIUM

pytestmark = pytest.mark.django_db(transaction=True)


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
    # Saved again, its judgement not yet done: the pages' longest notice shows.
    segmentation_writes.queue_judgement(rule)
    user = User.objects.create(username="nora")
    user.groups.add(Group.objects.get(name=GROUP_NAMES[Role.ADMIN]))
    return rule


def test_the_segmentation_pages_fit_a_390_pixel_screen(live_server, world, monkeypatch):
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
    assert overflowing_pages(live_server, monkeypatch, "nora", pages, "segmentation") == {}
