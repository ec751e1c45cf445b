"""Run nmap as a child process that can be watched, stopped and never orphaned.

Targets go to nmap through a file (``-iL``) and results come back as an XML
file (``-oX``) that ``scans.nmap_xml`` streams; the option list comes from
``scans.profiles``. Nothing in the argument list is user text.

python-nmap is used to find the nmap binary and read its version; scans are
not run through its ``PortScanner.scan``, because that keeps nmap's whole XML
output in memory and parses it as one tree (1.5 GB for a 65k-host scan), and
gives no handle to stop nmap when a run is cancelled or a task times out.
"""

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nmap
from django.conf import settings

from scans.constants import ERROR_TEXT_MAX

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_KILL_GRACE_SECONDS = 3


class NmapNotFound(RuntimeError):
    """The configured nmap binary does not exist or does not run."""


@dataclass
class NmapResult:
    returncode: int | None
    xml_path: Path
    stderr: str
    # Stopped on request (run cancelled) or by the task's time limit.
    stopped: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.stopped


def nmap_binary() -> str:
    """The absolute path of the nmap binary, or NmapNotFound with the fix."""
    configured = settings.NMAP_PATH
    path = shutil.which(configured)
    if path is None:
        raise NmapNotFound(
            f"nmap was not found (NMAP_PATH={configured!r}). Install it with "
            "'apt-get install nmap' (Debian/Ubuntu) or set NMAP_PATH to its location."
        )
    return path


@lru_cache(maxsize=4)
def _version_of(path: str) -> str:
    try:
        scanner = nmap.PortScanner(nmap_search_path=(path,))
    except nmap.PortScannerError as error:
        raise NmapNotFound(f"{path} does not run as nmap: {error}") from None
    major, minor = scanner.nmap_version()
    return f"{major}.{minor}"


def nmap_version() -> str:
    """nmap's version ("7.93"), checked by running it (through python-nmap)."""
    return _version_of(nmap_binary())


def die_with_parent() -> None:
    """Ask the kernel to kill nmap when the worker process that started it dies.

    Runs in the child between fork and exec. A worker killed with SIGKILL
    cannot clean up after itself; this way its nmap does not outlive it.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def run_nmap(
    options: list[str],
    targets: list[str],
    workdir: Path,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    poll_seconds: float = 1.0,
) -> NmapResult:
    """Run nmap over ``targets`` and wait, polling ``should_stop``.

    Any exception raised while waiting (Celery's soft time limit included)
    kills nmap's whole process group before it propagates.
    """
    binary = nmap_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    targets_file = workdir / "targets.txt"
    xml_path = workdir / "scan.xml"
    stderr_path = workdir / "stderr.txt"
    targets_file.write_text("".join(f"{target}\n" for target in targets))
    argv = [binary, *options, "--noninteractive", "-iL", str(targets_file), "-oX", str(xml_path)]
    logger.info("starting nmap: %s", " ".join(argv))
    with open(stderr_path, "wb") as stderr_file:
        process = subprocess.Popen(  # noqa: S603 - argv is built from vetted options only
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr_file,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - prefork children are single-threaded here
            cwd=workdir,
        )
        stopped = False
        try:
            while True:
                try:
                    process.wait(timeout=poll_seconds)
                    break
                except subprocess.TimeoutExpired:
                    if should_stop():
                        stopped = True
                        kill_group(process)
                        break
        except BaseException:
            kill_group(process)
            raise
    stderr = stderr_path.read_text(errors="replace")[-ERROR_TEXT_MAX:]
    return NmapResult(process.returncode, xml_path, stderr.strip(), stopped=stopped)


def kill_group(process: subprocess.Popen) -> None:
    """TERM nmap's process group, then KILL it if it lingers."""
    for sig, wait in ((signal.SIGTERM, _KILL_GRACE_SECONDS), (signal.SIGKILL, _KILL_GRACE_SECONDS)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return
            time.sleep(0.05)
    process.poll()
