"""Load benchmark: many logged-in viewers at once, against gunicorn as it ships, while a scan is ingested.

    make bench-load      (python -m tests.stack python -m bench.load)

Seeds the page benchmark's inventory (``bench.seed``, ``--hosts``,
1,000,000 by default), starts gunicorn with the web command of the Procfile
(what ``make run`` starts; ``--workers``/``--threads`` override it to try
another process model), and drives it with wrk (Debian's package) on
loopback: ``--clients`` connections (100), each a logged-in viewer waiting
``--think`` seconds (1) between requests, cycling through the overview, its
poll, the hosts, ports and changes lists and the API's lists, for
``--seconds`` (60). As the load starts, an nmap XML file of ``--scan-hosts``
hosts (16,384) is imported with ``manage.py import_nmap``, so the pages share
the machine with an ingest, as they do in production.

The anchor, measured in the same run on the same server: one client
requesting the same pages with no pause (the latency nobody waits behind).
CPU time of gunicorn, PostgreSQL and wrk is printed beside wall time. The
last line reads

    load clients=<n> rps=<x> p95_ms=<y> errors=<n>

Goal: errors 0, p95 < 1,000 ms, rps close to the offered load.
"""

import argparse
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "portwatch_bench_load"
LUA = Path(__file__).with_name("load.lua")


def procfile_web_args() -> list[str]:
    """gunicorn's arguments from the Procfile's web line, as make run starts it (bind excepted)."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    # ${NAME:-default} as the shell the supervisor runs it in would expand it.
    line = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda match: os.environ.get(match[1]) or match[2], line)
    argv = shlex.split(line.split(":", 1)[1])
    assert argv[:2] == ["gunicorn", "portwatch.wsgi"], line
    args, skip = [], False
    for arg in argv[2:]:
        if skip:
            skip = False
            continue
        if arg == "--bind":
            skip = True
            continue
        if arg.startswith("--bind=") or arg in {"--access-logfile", "-"}:
            continue
        args.append(arg)
    return args


def override(args: list[str], option: str, value) -> list[str]:
    if value is None:
        return args
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == option:
            skip = True
            continue
        if arg.startswith(option + "="):
            continue
        out.append(arg)
    return [*out, option, str(value)]


def sessions(count: int) -> list[str]:
    """Session keys of ``count`` logged-in viewers (made as the login view would, without hashing passwords)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.backends.db import SessionStore

    from portwatch.roles import GROUP_NAMES, Role

    group = Group.objects.get(name=GROUP_NAMES[Role.VIEWER])
    keys = []
    for index in range(count):
        user, created = User.objects.get_or_create(username=f"load-viewer-{index}")  # kept by --reuse
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.add(group)
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        keys.append(store.session_key)
    return keys


def page_paths() -> list[str]:
    from django.urls import reverse

    hosts, ports, changes = reverse("host-list"), reverse("port-list"), reverse("change-list")
    return [
        reverse("overview"),
        reverse("overview") + "#poll",
        hosts,
        f"{hosts}?q=6379",
        ports,
        f"{ports}?policy=unreviewed&zone=dc1",
        changes,
        f"{changes}?kind=port_closed&within=7",
        "/api/hosts/",
        "/api/services/?policy=unreviewed&zone=dc1",
        "/api/changes/",
    ]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes and their reaped children, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / ticks


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], check=False, capture_output=True, text=True).stdout.split()
    found = [int(child) for child in out]
    for child in list(found):
        found += descendants(child)
    return found


def postgres_pids(database_url: str) -> list[int]:
    """The PostgreSQL server of ``database_url`` and its backends, if it runs on this machine."""
    import urllib.parse

    port = urllib.parse.urlsplit(database_url).port or 5432
    pattern = f"postgres -D .* -p {port} "
    out = subprocess.run(["pgrep", "-f", pattern], check=False, capture_output=True, text=True).stdout.split()
    pids = [int(pid) for pid in out]
    return pids + [child for pid in pids for child in descendants(pid)]


def run_wrk(url: str, cookies: list[str], paths: list[str], *, clients: int, seconds: int, think_ms: int) -> dict:
    env = dict(os.environ, PW_COOKIES=" ".join(cookies), PW_PATHS=" ".join(paths), PW_THINK_MS=str(think_ms))
    threads = max(1, min(2, clients))
    argv = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = process.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = re.search(r"^wrk (.*)$", output, re.MULTILINE)
    if process.returncode != 0 or match is None:
        raise SystemExit(f"wrk failed ({process.returncode}):\n{output}")
    figures = dict(pair.split("=") for pair in match.group(1).split())
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {key: float(value) for key, value in figures.items()} | {"cpu": cpu}


def start_gunicorn(database_url: str, args: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    from tests.stack import free_port

    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        DEBUG="0",
        SECRET_KEY=os.environ["SECRET_KEY"],
        ALLOWED_HOSTS="127.0.0.1",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        LOG_LEVEL="WARNING",
    )
    # DEBUG off serves hashed static files from collectstatic's manifest, as in production.
    env["PORTWATCH_VAR_DIR"] = str(log.parent)
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    argv = [sys.executable, "-m", "gunicorn", "portwatch.wsgi", f"--bind=127.0.0.1:{port}", *args]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    import urllib.request

    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited:\n{log.read_text()}")
        try:
            urllib.request.urlopen(f"{url}/login/", timeout=2)  # noqa: S310 - loopback
            return process, url
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer within 60 s")


class Ingest:
    """A scan of ``hosts`` hosts, imported by the product's command while the load runs; its wall and CPU time."""

    def __init__(self, database_url: str, hosts: int, workdir: Path):
        import threading

        subprocess.run(
            [sys.executable, "-m", "bench.nmap_synth", str(workdir), "--hosts", str(hosts)], cwd=ROOT, check=True
        )
        self.log = workdir / "import.log"
        env = dict(os.environ, DATABASE_URL=database_url)
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "import_nmap", str(workdir / "scan1.xml"), "--zone", "dc1"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started = time.perf_counter()
        self.waiter = threading.Thread(target=self._wait, daemon=True)
        self.waiter.start()

    def _wait(self) -> None:
        # wait4 gives the importer's CPU time with its parser processes' (RUSAGE_BOTH of the child).
        _, status, usage = os.wait4(self.process.pid, 0)
        self.seconds = time.perf_counter() - self.started
        self.cpu = usage.ru_utime + usage.ru_stime
        self.returncode = os.waitstatus_to_exitcode(status)

    def result(self) -> str:
        self.waiter.join(timeout=1800)
        if self.returncode != 0:
            return f"failed ({self.returncode}): {self.log.read_text(errors='replace')[-500:]}"
        return f"ok in {self.seconds:.1f} s, importer CPU {self.cpu:.1f} s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--think", type=float, default=1.0, help="seconds each client waits between requests")
    parser.add_argument("--scan-hosts", type=int, default=16_384, help="hosts of the scan ingested during the load")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: the Procfile's)")
    parser.add_argument("--threads", type=int, default=None, help="gunicorn threads (default: the Procfile's)")
    parser.add_argument("--reuse", action="store_true", help="keep the page benchmark's inventory of this size")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench-load installs it as root)")

    from bench.pages import seeded_inventory

    database_url = seeded_inventory(args.hosts, args.reuse)
    cookies = sessions(args.clients)
    paths = page_paths()
    from django.db import connections

    connections.close_all()

    gunicorn_args = override(override(procfile_web_args(), "--workers", args.workers), "--threads", args.threads)
    with tempfile.TemporaryDirectory(prefix="portwatch-bench-load-") as tmp:
        workdir = Path(tmp)
        server, url = start_gunicorn(database_url, gunicorn_args, workdir / "gunicorn.log")
        try:
            print(f"gunicorn {' '.join(gunicorn_args)} at {url}", flush=True)
            # The anchor: one client, no pause, the same pages (a warm-up first).
            run_wrk(url, cookies[:1], paths, clients=1, seconds=5, think_ms=0)
            alone = run_wrk(url, cookies[:1], paths, clients=1, seconds=20, think_ms=0)
            print(
                f"one client, no pause: {alone['requests']:.0f} requests, p50 {alone['p50_ms']:.0f} ms, "
                f"p95 {alone['p95_ms']:.0f} ms",
                flush=True,
            )
            ingest = Ingest(database_url, args.scan_hosts, workdir)
            server_pids = [server.pid, *descendants(server.pid)]
            web_before, db_before = cpu_seconds(server_pids), cpu_seconds(postgres_pids(database_url))
            wall = time.perf_counter()
            loaded = run_wrk(
                url, cookies, paths, clients=args.clients, seconds=args.seconds, think_ms=round(args.think * 1000)
            )
            wall = time.perf_counter() - wall
            web_cpu = cpu_seconds(server_pids) - web_before
            db_cpu = cpu_seconds(postgres_pids(database_url)) - db_before
            ingested = ingest.result()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    offered = args.clients / (args.think + loaded["p50_ms"] / 1000) if args.think else float("nan")
    rps = loaded["requests"] / loaded["seconds"]
    print(
        f"{args.clients} clients, {args.think:g} s apart, {args.seconds} s: {loaded['requests']:.0f} requests, "
        f"{rps:.1f}/s (offered about {offered:.0f}/s), p50 {loaded['p50_ms']:.0f} ms, p95 {loaded['p95_ms']:.0f} ms, "
        f"p99 {loaded['p99_ms']:.0f} ms, max {loaded['max_ms']:.0f} ms, errors {loaded['errors']:.0f}; "
        f"the scan of {args.scan_hosts:,} hosts imported during it: {ingested}",
        flush=True,
    )
    cpu = web_cpu + db_cpu
    print(
        f"cpu: gunicorn {web_cpu:.1f} s + PostgreSQL {db_cpu:.1f} s (the ingest's backend included) over {wall:.1f} s "
        f"wall ({cpu / wall:.2f} cores); gunicorn {1000 * web_cpu / max(loaded['requests'], 1):.0f} ms a request; "
        f"wrk {loaded['cpu']:.1f} s",
        flush=True,
    )
    print(f"p95 ratio loaded / one client: {loaded['p95_ms'] / max(alone['p95_ms'], 0.1):.2f}", flush=True)
    print(f"load clients={args.clients} rps={rps:.1f} p95_ms={loaded['p95_ms']:.0f} errors={loaded['errors']:.0f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portwatch.settings")
    sys.exit(main())
