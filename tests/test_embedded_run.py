"""`make run` as a new user runs it: no servers, SQLite and the filesystem broker.

This starts the README's run command for real (web, worker and beat under
honcho), logs in with the printed admin password, adds a target through the
form, watches the scheduled scan land, opens a port, presses "scan now", sees
the change, and stops everything with Ctrl-C.
"""

import http.cookiejar
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from tests.conftest import ROOT, wait_for
from tests.lab import LAB_PORT_SPEC
from tests.stack import free_port

pytestmark = pytest.mark.lab


class Browser:
    """Just enough of a browser: cookies, CSRF tokens, forms."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.read().decode()

    def post(self, path: str, data: dict, *, form_page: str | None = None) -> tuple[str, str]:
        page = self.get(form_page or path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **data}).encode()
        request = urllib.request.Request(self.base + path, data=body, headers={"Referer": self.base + path})
        with self.opener.open(request, timeout=10) as response:
            return response.geturl(), response.read().decode()


@pytest.fixture
def embedded(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(PORTWATCH_VAR_DIR=str(tmp_path / "var"), PORTWATCH_BIND=f"127.0.0.1:{port}", SCHEDULER_TICK_SECONDS="2")
    # Variables `celery` would read as -A and -b: meant for something else, they change nothing here.
    env.update(APP="bogus_app", BROKER_URL="redis://127.0.0.1:1/0")
    log_path = tmp_path / "run.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        ["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process, log_path, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_make_run_serves_the_whole_loop_on_the_embedded_default(embedded, lab):
    process, log_path, base = embedded

    def log() -> str:
        return log_path.read_text(errors="replace")

    password = wait_for(
        lambda: re.search(r"password: (\S+)", log()), 120, message="the admin password in make run's output"
    ).group(1)
    # Where PORTWATCH_BIND put it.
    wait_for(lambda: f"PortWatch is starting on {base} (Ctrl-C stops it)." in log(), 30, message=f"the URL:\n{log()}")
    wait_for(lambda: "Listening at" in log() and "ready." in log(), 60, message=f"web and worker:\n{log()}")

    browser = Browser(base)
    url, _ = browser.post("/login/", {"username": "admin", "password": password})
    assert url == base + "/"

    lab.open(1, 41022)
    url, page = browser.post(
        "/targets/new/",
        {
            "name": "loopback",
            "zone": "1",
            "targets": lab.address(1),
            "ports": LAB_PORT_SPEC,
            "profile": "1",
            "schedule_kind": "interval",
            "schedule_interval": "60",
            "schedule_cron": "",
            "schedule_timezone": "UTC",
            "enabled": "on",
        },
    )
    assert "/targets/" in url and "loopback" in page, page[:2000]

    # The new schedule starts at once: beat's tick enqueues it, the worker scans.
    host_row = wait_for(
        lambda: lab.address(1) in browser.get("/hosts/") and browser.get("/"), 90, message=f"first scan:\n{log()}"
    )
    assert "41022/tcp" in host_row and "port opened" in host_row

    lab.open(1, 41443)
    target_path = urllib.parse.urlparse(url).path
    run_url, _ = browser.post(target_path + "scan/", {}, form_page=target_path)
    assert "/runs/" in run_url
    wait_for(lambda: "41443/tcp" in browser.get("/"), 60, message=f"scan now:\n{log()}")
    run_page = browser.get(urllib.parse.urlparse(run_url).path)
    assert "succeeded" in run_page and "41443/tcp" in run_page

    # Ctrl-C stops web, worker and beat.
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)
    time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes left behind: {leftovers}\n{log()}"
