"""Run masscan as a child process that can be watched, stopped and never orphaned.

Like ``scans.nmap_runner``: targets go to masscan through a file
(``--includefile``, validated addresses and networks written by code), the
scope's exclusions through another (``--excludefile``), results come back as
its list output (``-oL``, read by ``scans.masscan_list``), and the options come
from ``scans.profiles.masscan_options``. Nothing in the argument list is user text.

masscan 1.3.2 may never exit on its own once its scan is over: its receive
thread waits for one more packet, and its status line counts the wait down
past zero ("waiting -7-secs", robertdavidgraham/masscan#144, #813). So once
the status says its wait for late answers is over, the runner interrupts it
(SIGINT, as its author advises) and counts the scan as finished; if its
receive thread still hangs, a packet on its interface lets it end and write
its results (``_Nudger``). A masscan stopped on cancel or at the time limit is
killed and counts as nothing.
"""

import ipaddress
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from scans.constants import ERROR_TEXT_MAX
from scans.nmap_runner import die_with_parent, kill_group

logger = logging.getLogger(__name__)

# masscan's status line once its wait for late answers is over.
_WAIT_OVER = b"waiting -"
# Bytes of stderr read at each poll to find its latest status line.
_STATUS_TAIL = 512


class MasscanNotFound(RuntimeError):
    """The configured masscan binary does not exist."""


@dataclass
class MasscanResult:
    returncode: int | None
    output_path: Path
    stderr: str
    # Stopped on request (run cancelled) or by the task's time limit: its output concludes nothing.
    stopped: bool = False
    # Interrupted by the runner after its wait was over (see the module docstring): finished.
    waited_out: bool = False

    @property
    def ok(self) -> bool:
        return not self.stopped and (self.returncode == 0 or self.waited_out)


def masscan_binary() -> str:
    configured = settings.MASSCAN_PATH
    path = shutil.which(configured)
    if path is None:
        raise MasscanNotFound(
            f"masscan was not found (MASSCAN_PATH={configured!r}). Install it with "
            "'apt-get install masscan' (Debian/Ubuntu) or set MASSCAN_PATH to its location."
        )
    return path


def run_masscan(
    options: list[str],
    targets: list[str],
    workdir: Path,
    *,
    exclude: list[str] = (),
    name: str = "sweep",
    should_stop: Callable[[], bool] = lambda: False,
    poll_seconds: float = 0.25,
) -> MasscanResult:
    """Run masscan over ``targets`` (never ``exclude``) and wait, polling ``should_stop``.

    Any exception raised while waiting (Celery's soft time limit included)
    kills masscan's process group before it propagates.
    """
    binary = masscan_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    targets_file = workdir / f"{name}-targets.txt"
    output_path = workdir / f"{name}.txt"
    stderr_path = workdir / f"{name}-stderr.txt"
    targets_file.write_text("".join(f"{target}\n" for target in targets))
    argv = [binary, *options, "--includefile", str(targets_file), "-oL", str(output_path)]
    if exclude:
        exclude_file = workdir / f"{name}-exclude.txt"
        exclude_file.write_text("".join(f"{network}\n" for network in exclude))
        argv += ["--excludefile", str(exclude_file)]
    logger.info("starting masscan: %s", " ".join(argv))
    with open(stderr_path, "wb") as stderr_file:
        process = subprocess.Popen(  # noqa: S603 - argv is built from vetted options only
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr_file,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - prefork children are single-threaded here
            cwd=workdir,  # its resume file (paused.conf), if it writes one, stays in the chunk's directory
        )
        stopped = waited_out = False
        nudger = _Nudger(binary, targets, workdir / f"{name}-nudge")
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
                    # Once over, interrupted at every poll: its first Ctrl-C only starts a wait of its own.
                    if waited_out or _wait_is_over(stderr_path):
                        waited_out = True
                        _interrupt(process)
                        nudger.nudge()
        except BaseException:
            kill_group(process)
            raise
        finally:
            nudger.stop()
    stderr = stderr_path.read_text(errors="replace").replace("\r", "\n")[-ERROR_TEXT_MAX:]
    return MasscanResult(process.returncode, output_path, stderr.strip(), stopped=stopped, waited_out=waited_out)


class _Nudger:
    """Puts one packet on masscan's interface when its receive thread will not end.

    Interrupted, masscan still waits for its receive thread, which sits in a
    blocking read of the interface until a packet shows there (on a quiet
    link: seconds to minutes, its results unwritten until then; killing it
    loses them). A second masscan, started through the same MASSCAN_PATH (so
    on the same interface, in the same namespace), sending one ICMP echo to
    the first address this run swept anyway, is such a packet. It is killed
    as soon as the sweep ends; its own output is not read.
    """

    # Started with the first interrupt (a nudger takes a second or two to send its
    # packet), then again every EVERY_SECONDS until the sweep ends.
    EVERY_SECONDS = 2.0

    def __init__(self, binary: str, targets: list[str], workdir: Path):
        self.binary, self.targets, self.workdir = binary, targets, workdir
        self.last: float | None = None
        self.process: subprocess.Popen | None = None

    def nudge(self) -> None:
        now = time.monotonic()
        if not self.targets:
            return
        if self.last is not None and now - self.last < self.EVERY_SECONDS:
            return
        self.stop()
        self.last = now
        self.workdir.mkdir(parents=True, exist_ok=True)
        target = self.workdir / "target.txt"
        target.write_text(f"{ipaddress.ip_network(self.targets[0], strict=False).network_address}\n")
        argv = [self.binary, "--ping", "--rate", "10", "--wait", "0", "--includefile", str(target)]
        self.process = subprocess.Popen(  # noqa: S603 - fixed options, an address the sweep probes anyway
            [*argv, "-oL", str(self.workdir / "nudge.txt")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - prefork children are single-threaded here
            cwd=self.workdir,
        )

    def stop(self) -> None:
        if self.process is not None:
            kill_group(self.process)
            self.process = None


def _wait_is_over(stderr_path: Path) -> bool:
    with open(stderr_path, "rb") as stderr:
        stderr.seek(0, 2)
        stderr.seek(max(0, stderr.tell() - _STATUS_TAIL))
        tail = stderr.read()
    latest = tail.replace(b"\n", b"\r").rstrip(b"\r ").rpartition(b"\r")[2]
    return _WAIT_OVER in latest


def _interrupt(process: subprocess.Popen) -> None:
    """Ctrl-C for masscan: each poll sends another, which it needs when a thread hangs."""
    try:
        os.killpg(process.pid, signal.SIGINT)  # the group: a wrapper script that did not exec passes it on
    except ProcessLookupError:
        pass
