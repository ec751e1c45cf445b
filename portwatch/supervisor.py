"""Start the processes of a Procfile together and stop them cleanly: ``make run`` and ``make demo``.

    python -m portwatch.supervisor Procfile

Each line of the Procfile is ``name: command``. Every process's output is
shown line by line, after the time and its name. A process that ends by
itself stops the others, and the exit status is 1, naming it.

Ctrl-C stops everything and ends with status 0:

- The first Ctrl-C sends SIGTERM to each process itself: a Celery worker
  finishes the tasks it is running (warm shutdown) and gunicorn the requests
  it is serving. A second Ctrl-C kills what is left; the tasks it was running
  are delivered again when a worker starts (they are acknowledged late), so
  nothing is lost.
- Each process runs in its own session, so the terminal's Ctrl-C reaches this
  supervisor only and never the pool processes under a worker. (honcho, used
  before, sent SIGTERM to every process's whole group: the worker's pool
  processes died under it, "ForkPoolWorker exited with signal 15", it killed
  whatever had not stopped within 5 s and ended with status 130; see
  https://github.com/nickstenning/honcho/issues/78.)
- In a terminal, the supervisor takes the terminal's foreground, as a shell
  does for a job. Otherwise make, which started it, would get the Ctrl-C too
  and die of it whatever the recipe returns ("make: *** Interrupt").
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


class ProcfileError(ValueError):
    pass


def parse_procfile(text: str) -> list[tuple[str, str]]:
    """``(name, command)`` for each line of a Procfile; comments and blank lines skipped."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = LINE.match(line)
        if match is None:
            raise ProcfileError(f"line {number}: expected 'name: command', got {line!r}")
        if match.group(1) in dict(entries):
            raise ProcfileError(f"line {number}: {match.group(1)!r} is named twice")
        entries.append((match.group(1), match.group(2)))
    if not entries:
        raise ProcfileError("no processes in the Procfile")
    return entries


@dataclass
class Child:
    name: str
    command: str
    process: subprocess.Popen | None = None
    reader: threading.Thread | None = None
    returncode: int | None = None


class Supervisor:
    def __init__(self, entries: list[tuple[str, str]], out=sys.stdout):
        self.children = [Child(name, command) for name, command in entries]
        self.width = max(len(name) for name in [*dict(entries), "system"])
        self.out = out
        self.lock = threading.Lock()
        self.stop_requested = 0  # Ctrl-C (or SIGTERM) pressed this many times
        # In a terminal, each process's name in a colour of its own (the supervisor's in bold).
        palette = ("36", "33", "32", "35", "34", "31")
        self.colours = {name: palette[i % len(palette)] for i, (name, _) in enumerate(entries)} if out.isatty() else {}
        self.failed: Child | None = None

    def say(self, name: str, text: str) -> None:
        prefix = f"{time.strftime('%H:%M:%S')} {name:<{self.width}} |"
        if self.colours:
            prefix = f"\x1b[{self.colours.get(name, '1')}m{prefix}\x1b[0m"
        with self.lock:
            self.out.write(f"{prefix} {text}\n")
            self.out.flush()

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines as they are written, not in blocks
        for child in self.children:
            # The Procfile's own lines (the operator's file, as honcho ran them), run by the shell for ${VAR:-default}.
            child.process = subprocess.Popen(  # noqa: S603
                ["/bin/sh", "-c", f"exec {child.command}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # the terminal's Ctrl-C is not theirs: see the docstring
            )
            child.reader = threading.Thread(target=self._relay, args=(child,), daemon=True)
            child.reader.start()

    def _relay(self, child: Child) -> None:
        for raw in iter(child.process.stdout.readline, b""):
            self.say(child.name, raw.decode(errors="replace").rstrip("\r\n"))

    def _signal_all(self, sig: int, *, group: bool = False) -> None:
        for child in self.children:
            if child.returncode is None and child.process is not None:
                try:
                    if group:
                        os.killpg(child.process.pid, sig)
                    else:
                        os.kill(child.process.pid, sig)
                except ProcessLookupError:
                    pass

    def request_stop(self, signum=None, frame=None) -> None:
        self.stop_requested += 1

    def run(self) -> int:
        self.start()
        stopping = forced = False
        while True:
            if self.stop_requested and not stopping:
                stopping = True
                running = [child.name for child in self.children if child.returncode is None]
                if running:
                    self.say(
                        "system",
                        f"stopping {', '.join(running)}: running tasks finish first (Ctrl-C again stops at once)",
                    )
                self._signal_all(signal.SIGTERM)
            if self.stop_requested > 1 and not forced:
                forced = True
                self.say("system", "stopping at once; tasks that were running are delivered again at the next start")
                self._signal_all(signal.SIGKILL, group=True)
            for child in self.children:
                if child.returncode is None and child.process.poll() is not None:
                    child.returncode = child.process.returncode
                    if not stopping:
                        self.failed = child
                        self.say(
                            "system",
                            f"{child.name} ended by itself (exit status {child.returncode}): stopping the rest",
                        )
                        self.stop_requested = max(self.stop_requested, 1)
            if all(child.returncode is not None for child in self.children):
                break
            time.sleep(0.1)
        for child in self.children:
            # What a process left behind in its session (an nmap of a killed scan, say).
            try:
                os.killpg(child.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.reader.join(timeout=2)
        if self.failed is not None:
            self.say("system", f"stopped because {self.failed.name} ended (exit status {self.failed.returncode})")
            return 1
        self.say("system", "stopped")
        return 0


class TerminalForeground:
    """Make this process the terminal's foreground job while it runs (see the module's docstring)."""

    def __init__(self):
        self.fd = None
        self.previous = None

    def __enter__(self):
        try:
            fd = sys.stdin.fileno()
            if not os.isatty(fd) or os.tcgetpgrp(fd) != os.getpgrp():
                return self  # no terminal, or started in the background: nothing to take
            self.previous = os.getpgrp()
            os.setpgid(0, 0)
            self._set(fd, os.getpgrp())
            self.fd = fd
        except (OSError, ValueError):
            pass
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            try:
                self._set(self.fd, self.previous)
            except OSError:
                pass

    @staticmethod
    def _set(fd: int, pgrp: int) -> None:
        # A process that is not (or no longer) in the foreground gets SIGTTOU for this: ignored while it does.
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(fd, pgrp)
        finally:
            signal.signal(signal.SIGTTOU, previous)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m portwatch.supervisor PROCFILE\n")
        return 2
    try:
        entries = parse_procfile(Path(argv[0]).read_text())
    except (OSError, ProcfileError) as error:
        sys.stderr.write(f"{argv[0]}: {error}\n")
        return 2
    supervisor = Supervisor(entries)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, supervisor.request_stop)
    with TerminalForeground():
        return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
