"""Run a command (the test suite, a benchmark) against real PostgreSQL and Redis.

    python -m tests.stack pytest [args...]

``DATABASE_URL`` and ``REDIS_URL`` are used when set. Otherwise a throwaway
PostgreSQL cluster and Redis server are started from the installed binaries
in a temporary directory, on free loopback ports, and removed afterwards; a
missing binary stops with the command that installs it.
"""

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, what: str, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(
                f"{what} exited with status {process.returncode}:\n{log.read_text(errors='replace')[-2000:]}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise StackError(f"{what} did not accept connections on port {port} within {timeout:.0f} s")


def _postgres_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise StackError(
        "PostgreSQL server binaries (initdb, postgres) were not found, and DATABASE_URL is not set.\n"
        "Install them with:  sudo apt-get install postgresql\n"
        "or point the tests at a server:  DATABASE_URL=postgres://user@host:5432/portwatch make test"
    )


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: run it as 'postgres' (or 'nobody')."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise StackError("Running as root, and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL.")


@contextlib.contextmanager
def postgres(workdir: Path):
    bindir = _postgres_bindir()
    user = _unprivileged_user()
    data = workdir / "pgdata"
    data.mkdir()
    if user:
        shutil.chown(workdir, user)
        shutil.chown(data, user)
    log = workdir / "postgres.log"
    init = subprocess.run(
        [bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C"],
        user=user,
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        raise StackError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
    port = free_port()
    # Durability is pointless for a throwaway cluster; speed is not.
    settings = [
        "fsync=off",
        "synchronous_commit=off",
        "full_page_writes=off",
        "max_connections=200",
        # As in docker-compose.yml: the benchmarks' inventory fits in memory.
        "shared_buffers=512MB",
    ]
    argv = [bindir / "postgres", "-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", workdir]
    for setting in settings:
        argv += ["-c", setting]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(argv, user=user, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, "PostgreSQL", process, log)
        yield f"postgres://postgres@127.0.0.1:{port}/portwatch"
    finally:
        process.send_signal(signal.SIGINT)  # fast shutdown
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
        if process.poll() is None:
            process.kill()


@contextlib.contextmanager
def redis(workdir: Path):
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError(
            "redis-server was not found, and REDIS_URL is not set.\n"
            "Install it with:  sudo apt-get install redis-server\n"
            "or point the tests at a server:  REDIS_URL=redis://host:6379/0 make test"
        )
    port = free_port()
    log = workdir / "redis.log"
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, "Redis", process, log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="portwatch-stack-")))
        # PostgreSQL runs as another user when we are root: it must reach its directory.
        os.chmod(workdir, 0o755)  # noqa: S103
        try:
            if not env.get("DATABASE_URL"):
                env["DATABASE_URL"] = stack.enter_context(postgres(workdir))
                print(f"tests.stack: throwaway PostgreSQL at {env['DATABASE_URL']}", file=sys.stderr)
            if not env.get("REDIS_URL"):
                env["REDIS_URL"] = stack.enter_context(redis(workdir))
                print(f"tests.stack: throwaway Redis at {env['REDIS_URL']}", file=sys.stderr)
        except StackError as error:
            print(f"tests.stack: {error}", file=sys.stderr)
            return 3
        return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
