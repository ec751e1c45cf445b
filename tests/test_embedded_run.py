"""`make run` as a new user runs it: no servers, SQLite and the filesystem broker.

This starts the README's run command for real (web, worker and beat under
the supervisor), logs in with the printed admin password, adds a target through the
form, watches the scheduled scan land, opens a port, presses "scan now", sees
the change, and stops everything with Ctrl-C pressed in its terminal (a
pseudo-terminal): make ends with status 0, nothing left running, no errors.
"""

import contextlib
import fcntl
import http.cookiejar
import os
import pty
import re
import shutil
import signal
import subprocess
import termios
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

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


def _descendants(pid: int) -> set[int]:
    """Every process under ``pid``, from /proc (its own sessions included)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _become_controlled_by_the_terminal():
    """In the child: a session of its own, with the pseudo-terminal as its controlling terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.fixture
def embedded(tmp_path):
    """`make run` in a terminal (a pseudo-terminal), as a person starts it: Ctrl-C is a keystroke."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    port = free_port()
    # As a person's shell runs it: not as a sub-make of `make test` (MAKELEVEL, MAKEFLAGS).
    outside = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "MAKELEVEL", "MAKEFLAGS", "MFLAGS")
    env = {key: value for key, value in os.environ.items() if key not in outside}
    env.update(PORTWATCH_VAR_DIR=str(tmp_path / "var"), PORTWATCH_BIND=f"127.0.0.1:{port}", SCHEDULER_TICK_SECONDS="2")
    # Variables `celery` would read as -A and -b: meant for something else, they change nothing here.
    env.update(APP="bogus_app", BROKER_URL="redis://127.0.0.1:1/0")
    env.pop("DEBUG", None)  # make run's own default: off
    log_path = tmp_path / "run.log"
    terminal, their_end = pty.openpty()
    process = subprocess.Popen(
        ["make", "run"],
        cwd=ROOT,
        env=env,
        stdin=their_end,
        stdout=their_end,
        stderr=their_end,
        preexec_fn=_become_controlled_by_the_terminal,  # noqa: PLW1509 - no threads hold locks yet
    )
    os.close(their_end)

    def copy_to_log():
        with open(log_path, "ab") as log:
            while True:
                try:
                    data = os.read(terminal, 65536)
                except OSError:  # the terminal closed: every process has ended
                    return
                if not data:
                    return
                log.write(data)
                log.flush()

    copier = threading.Thread(target=copy_to_log, daemon=True)
    copier.start()
    try:
        yield process, log_path, f"http://127.0.0.1:{port}", terminal
    finally:
        for pid in _descendants(process.pid) | {process.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        os.close(terminal)


def test_make_run_serves_the_whole_loop_on_the_embedded_default(embedded, lab):
    process, log_path, base, terminal = embedded

    def log() -> str:  # as read on the terminal, without its colours
        return re.sub(r"\x1b\[[0-9;]*m", "", log_path.read_text(errors="replace"))

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

    # DEBUG is off: the product's own 404 page, not Django's technical one.
    try:
        browser.get("/no-such-page/")
    except urllib.error.HTTPError as error:
        assert error.code == 404
        missing = error.read().decode()
    assert "There is nothing at this address" in missing and "URLconf" not in missing and "DEBUG = True" not in missing

    # A calm console: what happened (the scans finished), not routine ticks or banners.
    text = log()
    assert "scan of loopback from default finished" in text
    for noise in ("Task ", "Sending due task", "SecurityWarning", "No hostname was supplied", "AXES: BEGIN", "[tasks]"):
        assert noise not in text, f"{noise!r} in the console:\n{text}"

    # Ctrl-C, pressed in the terminal, stops web, workers and beat, and make ends with status 0.
    running = _descendants(process.pid)
    assert len(running) >= 4
    os.write(terminal, b"\x03")
    assert process.wait(timeout=60) == 0, log()
    # Processes still ending (a loaded machine's disk) are given time; none may stay.
    with contextlib.suppress(AssertionError):  # the assertion below names them
        wait_for(lambda: not any(_alive(pid) for pid in running), 10, message="the processes to end")
    leftovers = sorted(pid for pid in running if _alive(pid))
    assert leftovers == [], f"processes left behind: {leftovers}\n{log()}"
    stopping = log().split("stopping web", 1)[1]
    for failure in ("ERROR", "signal 15", "Traceback", "Interrupt", "Error 130", "SIGKILL"):
        assert failure not in stopping, f"{failure!r} while stopping:\n{stopping}"
    said = [line for line in stopping.splitlines() if " | " in line]
    assert said[-1].endswith("system | stopped"), stopping
