"""Shared set-up for benchmarks: a fresh database, Django, timing helpers.

Benchmarks run through tests.stack (real PostgreSQL and Redis, throwaway ones
unless DATABASE_URL / REDIS_URL are set) and create their own database next
to the one DATABASE_URL names, so they never touch an existing inventory.
"""

import os
import resource
import statistics
import time
import urllib.parse
from contextlib import contextmanager


def database_url(name: str) -> str:
    """The URL of database ``name`` on DATABASE_URL's server."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("Benchmarks need PostgreSQL: run them with `make bench-...` or set DATABASE_URL.")
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=f"/{name}"))


def fresh_database(name: str) -> str:
    """Create (or recreate) database ``name`` on DATABASE_URL's server; return its URL."""
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def setup_django(database_url: str, *, migrate: bool = True, **env: str) -> None:
    """Point this process at ``database_url``, set Django up and (by default) migrate."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portwatch.settings")
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key-0123456789-0123456789")
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    if migrate:
        call_command("migrate", verbosity=0)


def raise_open_files_limit(wanted: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@contextmanager
def timed(results: dict, key: str):
    start = time.perf_counter()
    yield
    results[key] = time.perf_counter() - start


def measure_page(client, name: str, url: str, repeat: int, **headers) -> tuple[str, float, float, float]:
    """p50 and p95 wall time of ``repeat`` requests, and the mean CPU time this process spent on one."""
    walls, cpus = [], []
    client.get(url, **headers)  # a first request warms caches, as a page visited before would
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        response = client.get(url, **headers)
        cpus.append((time.process_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
    walls.sort()
    p95 = walls[min(len(walls) - 1, round(0.95 * len(walls)) - 1)]
    p50, cpu = statistics.median(walls), statistics.mean(cpus)
    print(f"  {name:<34} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   cpu {cpu:6.1f} ms   {url}", flush=True)
    return name, p50, p95, cpu
