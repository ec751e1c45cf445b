"""Pages at a phone's width in a real browser: which are wider than the screen.

Headless Chromium (as tests/test_browser.py) against pytest-django's live
server, logged in by a session cookie made before Playwright runs.
Screenshots go with the browser test's (SCREENSHOT_DIR).
"""

from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from tests.test_browser import CHROMIUM, SCREENSHOT_DIR

WIDTH = 390


def overflowing_pages(live_server, monkeypatch, username: str, pages: dict, prefix: str, *, then=None) -> dict:
    """{name: page width} of ``pages`` ({name: url}) wider than WIDTH; ``then(page, overflowing)`` runs after."""
    from playwright.sync_api import sync_playwright

    client = Client()
    client.force_login(User.objects.get(username=username))
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    # The live server answers from its own thread; only for this test (a later
    # subprocess's `check --deploy` must not inherit it).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    overflowing: dict[str, int] = {}
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
            shoot(page, f"{prefix}-{name}", overflowing)
        if then is not None:
            then(page, overflowing)
        browser.close()
    return overflowing


def shoot(page, name: str, overflowing: dict) -> None:
    """Screenshot the page; note its width if it is wider than the screen."""
    width = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}-{WIDTH}.png"), full_page=True)
    if width > WIDTH:
        overflowing[name] = width
