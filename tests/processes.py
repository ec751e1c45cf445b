"""Real PortWatch processes for tests and benchmarks: Celery workers and beat, the web server, waiting."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout: float = 60, interval: float = 0.25, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")


def backend_pid() -> int:
    """This thread's PostgreSQL backend (Django's connections are per thread)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def waits_for_a_lock(pid: int) -> bool:
    """Whether the PostgreSQL backend ``pid`` is waiting for a lock (asked on this thread's connection)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return bool(row) and row[0] == "Lock"


def process_env(**extra) -> dict[str, str]:
    """Environment for a PortWatch process that shares this test's database."""
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="portwatch.settings",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        PORTWATCH_VAR_DIR=str(settings.VAR_DIR),
        SECRET_KEY=settings.SECRET_KEY,
        PYTHONUNBUFFERED="1",
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


class _Process:
    """A PortWatch process in its own process group, with its output in a log file."""

    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


class WorkerProcess(_Process):
    """A real Celery worker (``manage.py run_worker``) in its own process group."""

    def __init__(self, log_path: Path, *args: str, **env):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker", "--concurrency=2", *args],
            cwd=ROOT,
            env=process_env(**env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: b"ready." in log_path.read_bytes() or self.process.poll() is not None, 60, message="worker")
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited:\n{self.log()}")

    def children(self) -> list[int]:
        """PIDs of the pool processes (children of the main worker process)."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]


class ScannerProcess(_Process):
    """A remote scanner (``manage.py run_scanner``): the broker only, no database settings at all.

    Its environment is built from scratch, not from this test's: no
    DATABASE_URL, and a var directory of its own in which the embedded
    SQLite file must never appear.
    """

    def __init__(self, log_path: Path, var_dir: Path, *, vantage: str, key: str, **env):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        environment = {
            "PATH": os.environ["PATH"],
            "HOME": str(var_dir),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "portwatch.settings",
            "PORTWATCH_VAR_DIR": str(var_dir),
            "PORTWATCH_SCANNER_ONLY": "1",
            "PORTWATCH_SCANNER_VANTAGE": vantage,
            "PORTWATCH_SCANNER_KEY": key,
            "REDIS_URL": settings.CELERY_BROKER_URL,
            "WORKER_HEARTBEAT_SECONDS": "1",
            **{name: str(value) for name, value in env.items()},
        }
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "run_scanner", "--concurrency=1"],
            cwd=ROOT,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: b"ready." in log_path.read_bytes() or self.process.poll() is not None, 60, message="scanner")
        if self.process.poll() is not None:
            raise RuntimeError(f"scanner exited:\n{self.log()}")


class BeatProcess(_Process):
    """Celery beat as the Procfile starts it (``manage.py run_beat``), in its own process group.

    Its schedule file sits beside its log unless ``--schedule`` is given.
    """

    def __init__(self, log_path: Path, *args: str, **env):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        if "--schedule" not in args:
            args = (*args, "--schedule", str(log_path.with_suffix(".schedule")))
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "run_beat", *args],
            cwd=ROOT,
            env=process_env(**env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started = lambda: b"beat: Starting" in log_path.read_bytes() or self.process.poll() is not None  # noqa: E731
        wait_for(started, 60, message="beat")
        if self.process.poll() is not None:
            raise RuntimeError(f"beat exited:\n{self.log()}")


class WebProcess(_Process):
    """The real web server (gunicorn, as the Procfile runs it) on a free loopback port."""

    def __init__(self, log_path: Path, **env):
        from tests.stack import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "portwatch.wsgi",
                f"--bind=127.0.0.1:{self.port}",
                "--workers=2",
                "--threads=4",
                "--no-control-socket",
            ],
            cwd=ROOT,
            env=process_env(**env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        booted = lambda: b"Booting worker" in log_path.read_bytes() or self.process.poll() is not None  # noqa: E731
        wait_for(booted, 60, message="gunicorn")
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{self.log()}")


class RedisProcess:
    """A redis-server a test owns, so that it can stop and restart it.

    Like many installs (and Debian's default for a broker), it keeps nothing
    on disk: a restart forgets every message it held.
    """

    def __init__(self, workdir: Path):
        from tests.stack import free_port

        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with open(self.workdir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                [*argv, "--dir", str(self.workdir)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(self._answers, 20, interval=0.05, message="redis-server to accept connections")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: with --save "" it keeps nothing
            self.process.wait(timeout=20)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _answers(self) -> bool:
        import redis

        try:
            return redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
        except redis.ConnectionError:
            return False
