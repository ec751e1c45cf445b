"""The UI in a real browser: headless Chromium (Debian's package) driven by Playwright.

One user's morning, end to end against real processes (gunicorn, a Celery
worker, nmap scanning the loopback lab): log in, add a target, scan it, see the
ports, approve one, reject one, read the changes feed, and watch the overview's
figures and chart follow without a reload. Screenshots of the main pages are
saved under SCREENSHOT_DIR (tests/artifacts/screenshots, or
$PORTWATCH_SCREENSHOTS) for CI to keep and for people to look at.
"""

import os
import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group, User
from playwright.sync_api import expect

from portwatch.roles import GROUP_NAMES, Role
from tests.lab import LAB_PORT_SPEC
from tests.processes import ROOT, WebProcess, WorkerProcess

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("PORTWATCH_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT_DIR = Path(os.environ.get("PORTWATCH_SCREENSHOTS", ROOT / "tests" / "artifacts" / "screenshots"))
PASSWORD = "a browser test password 42"
SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"


@pytest.fixture
def stack(tmp_path):
    """The web server and a scan worker, sharing this test's database."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (make test does this as root)")
    worker = WorkerProcess(tmp_path / "worker.log")
    # The overview polls every second here, so the test sees it follow quickly.
    web = WebProcess(tmp_path / "web.log", OVERVIEW_POLL_SECONDS=1)
    yield web
    web.stop()
    worker.stop()


@pytest.fixture
def reviewer_login(db):
    # The web process verifies passwords with the product's hashers, not the tests' fast one.
    user = User.objects.create(username="rita", password=PBKDF2PasswordHasher().encode(PASSWORD, "browsersalt"))
    user.groups.add(Group.objects.get(name=GROUP_NAMES[Role.ADMIN]))
    return user.username


@pytest.fixture
def page(stack, reviewer_login):
    # Django refuses database calls while Playwright's event loop runs: users are made first.
    from playwright.sync_api import sync_playwright

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        context = browser.new_context(base_url=stack.url, viewport={"width": 1366, "height": 900})
        context.set_default_timeout(30_000)
        # Any script error or CSP violation on any page fails the test.
        context.problems = []
        context.on("console", lambda message: message.type == "error" and context.problems.append(message.text))
        context.on("weberror", lambda error: context.problems.append(str(error.error)))
        yield context.new_page()
        context.close()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)


def decide(page, stack, row_text: str, decision: str, justification: str) -> None:
    page.goto("/ports/")
    page.get_by_role("link", name=row_text).click()
    page.wait_for_url(re.compile(r"/hosts/.+/ports/tcp/\d+/$"))
    page.locator(f'input[name="decision"][value="{decision}"]').check()
    page.get_by_label("Justification (required)").fill(justification)
    page.get_by_role("button", name="Decide on this port").click()
    page.wait_for_load_state()


def test_a_morning_in_the_browser(page, stack, lab, reviewer_login):
    # --- log in -------------------------------------------------------------------
    page.goto("/")
    page.wait_for_url(re.compile(r"/login/"))
    page.get_by_label("Username", exact=True).fill(reviewer_login)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(stack.url + "/")
    assert page.locator("h1").inner_text() == "Overview"
    shot(page, "01-overview-empty")

    # --- add a target for the loopback lab ---------------------------------------
    host = lab.address(1)
    lab.open(1, 41022, banner=SSH_BANNER)
    lab.open(1, 41080)
    lab.open(1, 41379)
    page.goto("/targets/new/")
    page.get_by_label("Name", exact=True).fill("browser lab")
    page.get_by_label("Targets", exact=True).fill(host)
    page.get_by_label("Ports", exact=True).fill(LAB_PORT_SPEC)
    page.get_by_label("Schedule", exact=True).select_option("manual")
    shot(page, "02-target-form")
    page.get_by_role("button", name=re.compile("Save|Add|Create")).click()
    page.wait_for_url(re.compile(r"/targets/[0-9a-f-]{36}/$"))

    # --- scan it now and watch the run finish -------------------------------------
    page.get_by_role("button", name="Scan now").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}/$"))
    page.get_by_text("succeeded", exact=True).first.wait_for(timeout=120_000)
    shot(page, "03-run-detail")

    # --- the ports it found -------------------------------------------------------
    page.goto("/ports/")
    for port in (41022, 41080, 41379):
        assert page.get_by_role("link", name=f"{port}/tcp").count() == 1
    shot(page, "04-ports")

    # --- the overview counts them; keep it open and watch it follow ----------------
    page.goto("/")
    expect(page.locator("#ports-chart")).to_have_attribute("data-last", "3,3,0", timeout=30_000)
    assert page.locator('[data-figure="open_ports"]').inner_text() == "3"
    overview = page
    review = page.context.new_page()

    # --- approve one, reject one (in a second tab) --------------------------------
    decide(review, stack, "41022/tcp", "approved", "ssh for the operators")
    decide(review, stack, "41379/tcp", "rejected", "no redis on the lab hosts")
    assert "rejected" in review.content()
    review.goto("/review/")
    shot(review, "05-review-queue")

    # The overview was not reloaded: its live panel and chart followed the decisions.
    # (Chromium throttles a hidden tab's timers; the wall screen shows the overview.)
    overview.bring_to_front()
    expect(overview.locator("#ports-chart")).to_have_attribute("data-last", "3,1,1", timeout=30_000)
    assert overview.locator('[data-figure="unreviewed"]').inner_text() == "1"
    assert overview.locator('[data-figure="violating"]').inner_text() == "1"
    shot(overview, "06-overview")

    # --- the changes feed, filtered -----------------------------------------------
    lab.close(1, 41080)
    review.goto("/targets/")
    review.get_by_role("link", name="browser lab").click()
    review.get_by_role("button", name="Scan now").click()
    review.get_by_text("succeeded", exact=True).first.wait_for(timeout=120_000)
    # A port that stops answering is re-probed before it is called closed (scans.confirm).
    for _ in range(60):
        review.goto("/changes/?kind=port_closed")
        if review.locator("main table tbody tr").count():
            break
        review.wait_for_timeout(1000)
    review.goto("/changes/")
    review.locator('select[name="kind"]').select_option(["port_closed"])
    review.get_by_role("button", name="Filter").click()
    review.wait_for_url(re.compile(r"kind=port_closed"))
    rows = review.locator("main table tbody tr")
    assert rows.count() == 1
    assert "41080/tcp" in rows.first.inner_text() and host in rows.first.inner_text()
    rows.first.get_by_role("link", name="41080/tcp").click()
    review.wait_for_url(re.compile(r"/ports/tcp/41080/$"))
    shot(review, "07-port-history")
    review.goto("/changes/")
    shot(review, "08-changes")
    # The exposure matrix: the zone's home reaches the host's two open ports; its cell lists them.
    review.goto("/exposure/")
    shot(review, "09-exposure-matrix")
    cell = review.locator("table.matrix tbody tr", has_text="default").get_by_role("link", name="2 open")
    cell.click()
    review.wait_for_url(re.compile(r"/exposure/from/default/\?zone=default"))
    assert "41022/tcp" in review.locator("main table tbody").inner_text()
    shot(review, "10-exposure-cell")
    review.goto("/exposure/?rows=tag")
    shot(review, "11-exposure-matrix-by-tag")
    overview.bring_to_front()
    expect(overview.locator("#ports-chart")).to_have_attribute("data-last", "2,0,1", timeout=30_000)

    assert page.context.problems == []
