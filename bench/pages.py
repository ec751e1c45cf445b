"""Page benchmark: every main page and API list at 1,000,000 hosts.

    make bench-pages                       (python -m tests.stack python -m bench.pages)
    make bench-pages BENCH_ARGS="--hosts 100000"

Seeds a fresh PostgreSQL database (``bench.seed``: ``--hosts`` hosts, ten
ports each, a change for every fifth port, so 1M hosts give 10M services
and 2M changes), then requests each page as a logged-in viewer through
Django's test client (the whole view, template and queries; no HTTP server)
and prints p50 / p95 per page. The anchor is the goal from the issue: every
page under 200 ms at the 95th percentile. The last line reads

    pages hosts=<n> services=<m> worst_p95_ms=<x> worst_page=<name>

``--reuse`` keeps an inventory seeded earlier at the same size (on a server
named by DATABASE_URL; tests.stack's own is thrown away after each run), and
``--explain`` prints the plan of each page's slowest query (EXPLAIN ANALYZE),
which is how the filters' plans were checked for a tiny and a huge tag.

Seeded addresses lie in 127.0.0.0/8 and are never scanned.
"""

import argparse
import os
import statistics
import sys
import time

from bench.common import fresh_database, setup_django

DATABASE = "portwatch_bench_pages"


def pages() -> list[tuple]:
    from django.contrib.auth.models import Group, User
    from django.urls import reverse

    from portwatch.roles import GROUP_NAMES, Role

    viewer, _ = User.objects.get_or_create(username="bench-viewer")
    viewer.groups.add(Group.objects.get(name=GROUP_NAMES[Role.VIEWER]))

    from inventory.models import Host, Service, Zone
    from scans.models import ScanProfile, ScanTarget

    middle = (Host.objects.order_by("pk").values_list("pk", flat=True).last() or 0) // 2
    host = Host.objects.filter(pk__gte=middle).order_by("pk").first()
    service = Service.objects.filter(host=host).first()
    hosts, ports, queue = reverse("host-list"), reverse("port-list"), reverse("review-queue")
    changes = reverse("change-list")
    # Scheduled targets, so the overview's freshness figures have work to do.
    quick = ScanProfile.objects.get(slug="quick")
    for zone in Zone.objects.all():
        ScanTarget.objects.get_or_create(
            name=f"bench {zone.name}",
            defaults={
                "zone": zone,
                "targets": "127.0.0.0/16",
                "profile": quick,
                "schedule_kind": "interval",
                "schedule_interval": 60,
            },
        )
    return [
        ("overview", reverse("overview")),
        ("hosts", hosts),
        ("hosts deep", deep(hosts, 0.6)),
        ("hosts sort=risk deep", deep(f"{hosts}?sort=risk", 0.6)),
        ("hosts sort=risk", f"{hosts}?sort=risk"),
        ("hosts sort=violating", f"{hosts}?sort=violating"),
        ("hosts sort=changed", f"{hosts}?sort=changed"),
        ("hosts q=network", f"{hosts}?q=127.1.0.0/20"),
        ("hosts q=6379", f"{hosts}?q=6379"),
        ("hosts q=hostname", f"{hosts}?q=host-4242"),
        ("hosts q=product", f"{hosts}?q=Elasticsearch"),
        ("hosts zone+unreviewed", f"{hosts}?zone=dc1&policy=unreviewed"),
        ("hosts tag+violating", f"{hosts}?tag=tag-3&policy=violating&risk=3"),
        ("hosts tag huge", f"{hosts}?tag=tag-20"),
        ("hosts tag tiny", f"{hosts}?tag=tag-19"),
        ("hosts changed 1d", f"{hosts}?changed=1&sort=changed"),
        ("ports", ports),
        ("ports port=6379", f"{ports}?port=6379"),
        ("ports unreviewed dc1", f"{ports}?policy=unreviewed&zone=dc1"),
        ("ports q=redis", f"{ports}?q=redis"),
        ("ports q=network", f"{ports}?q=127.1.0.0/24"),
        ("ports tag+risk", f"{ports}?tag=tag-5&risk=3"),
        ("ports tag huge", f"{ports}?tag=tag-20"),
        ("ports tag tiny", f"{ports}?tag=tag-19"),
        ("ports sort=port", f"{ports}?sort=port"),
        ("ports deep", deep(ports, 0.6)),
        ("review queue", queue),
        ("review queue dc2", f"{queue}?zone=dc2"),
        ("host detail", host.get_absolute_url()),
        ("port detail", service.get_absolute_url()),
        ("rules", reverse("rule-list")),
        ("audit", reverse("audit-list")),
        ("overview 30 d", f"{reverse('overview')}?range=30"),
        ("overview poll", reverse("overview"), {"HX-Request": "true"}),
        ("changes", changes),
        ("changes deep", deep(changes, 0.6)),
        ("changes unreviewed risk", f"{changes}?policy=unreviewed&risk=3"),
        ("changes closed dc1 7d", f"{changes}?kind=port_closed&zone=dc1&within=7"),
        ("changes tag", f"{changes}?tag=tag-3"),
        ("changes tag huge", f"{changes}?tag=tag-20"),
        ("changes tag tiny", f"{changes}?tag=tag-19"),
        ("changes tag tiny 7d", f"{changes}?tag=tag-19&within=7"),
        ("metrics", reverse("metrics")),
        ("runs", reverse("run-list")),
        ("targets", reverse("target-list")),
        ("zones", reverse("zone-list")),
        ("alerts", reverse("notification-list")),
        ("api hosts", "/api/hosts/"),
        ("api services unreviewed", "/api/services/?policy=unreviewed&zone=dc1"),
        ("api changes", "/api/changes/"),
        ("api changes deep", deep("/api/changes/", 0.6, changes)),
        ("api changes port_closed", "/api/changes/?kind=port_closed&within=7"),
        ("api changes tag tiny", "/api/changes/?tag=tag-19"),
        ("api services", "/api/services/"),
        ("api runs", "/api/runs/"),
    ]


def deep(url: str, depth: float, page_url: str | None = None) -> str:
    """``url`` with the cursor of the row ``depth`` of the way down its list (as if Next had been followed that far).

    The list's rows and order are the page's own (its filter's queryset, as
    ``page_url`` or ``url`` shows it); the cursor is made by ``inventory.paging``
    as a Next link would carry it.
    """
    import urllib.parse

    from django.contrib.auth.models import User
    from django.test import RequestFactory
    from django.urls import resolve

    from inventory import paging

    request = RequestFactory().get(page_url or url)
    request.user = User.objects.get(username="bench-viewer")
    view = resolve(request.path).func.view_class()
    queryset = view.filterset_class(request.GET, queryset=view.base_queryset(), request=request).qs
    keys = paging.keys_of(queryset)
    total = queryset.model.objects.order_by("-pk").values_list("pk", flat=True).first()
    row = queryset.filter(pk__gte=int(total * depth)).order_by("pk").first()
    cursor = paging.encode(keys, paging.row_values(keys, row), False)
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urllib.parse.urlencode({paging.CURSOR_PARAM: cursor})}"


def measure(repeat: int, explain: bool = False, only: str = "") -> list[tuple[str, float, float]]:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client, override_settings

    results = []
    # Static URLs without the collectstatic manifest (the pages are what is timed).
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    storages = {**settings.STORAGES, "staticfiles": plain}
    with override_settings(STORAGES=storages):
        listed = pages()
        client = Client()
        client.force_login(User.objects.get(username="bench-viewer"))
        for name, url, *headers in listed:
            if only and only not in name:
                continue
            results.append(_time_page(client, name, url, repeat, *headers))
            if explain:
                _explain(client, url, *headers)
    return results


def _time_page(client, name: str, url: str, repeat: int, headers=None) -> tuple[str, float, float]:
    for _ in range(2):
        assert client.get(url, headers=headers).status_code == 200, (name, url)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (name, url, response.status_code)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * len(times)) - 1)]
    print(f"  {name:<26} p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms   {url}", flush=True)
    return name, statistics.median(times), p95


def _explain(client, url: str, headers=None) -> None:
    """Print the plan of the page's slowest query, as PostgreSQL ran it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url, headers=headers)
    slowest = max(captured.captured_queries, key=lambda query: float(query["time"]), default=None)
    if slowest is None or not slowest["sql"].lstrip().upper().startswith("SELECT"):
        return
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest["sql"])
        plan = [row[0] for row in cursor.fetchall()]
    print(f"      slowest query {float(slowest['time']) * 1000:.1f} ms: {slowest['sql'][:300]}")
    for line in plan:
        print(f"        {line}")


def _seeded_size(url: str) -> int | None:
    """The host count of an inventory seeded earlier in the database at ``url``, or None."""
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            if conn.execute("SELECT to_regclass('inventory_host') IS NULL").fetchone()[0]:
                return None
            return conn.execute(
                "SELECT count(*) FROM inventory_host WHERE hostnames->>0 LIKE '%.bench.example'"
            ).fetchone()[0]
    except psycopg.OperationalError:  # no such database yet
        return None


def seeded_inventory(hosts: int, reuse: bool) -> str:
    """Point Django at the benchmark's database, seeded with ``hosts`` hosts (kept from earlier if asked); its URL."""
    from bench.common import database_url

    url = database_url(DATABASE)
    # DEBUG off, as in production (DEBUG keeps every query in memory).
    if reuse and _seeded_size(url) == hosts:
        setup_django(url, DEBUG="false", ALLOWED_HOSTS="testserver")
        print(f"reusing the inventory of {hosts:,} hosts seeded earlier", flush=True)
        return url
    setup_django(fresh_database(DATABASE), DEBUG="false", ALLOWED_HOSTS="testserver")
    from bench.seed import seed

    started = time.perf_counter()
    seed(hosts)
    print(f"seeded {hosts:,} hosts in {time.perf_counter() - started:.0f} s", flush=True)
    return url


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="keep an inventory of this size seeded earlier")
    parser.add_argument("--explain", action="store_true", help="print the plan of each page's slowest query")
    parser.add_argument("--only", default="", help="time only the pages whose name contains this")
    args = parser.parse_args(argv)
    seeded_inventory(args.hosts, args.reuse)
    from inventory.models import Service

    services = Service.objects.count()
    from scans.models import Change

    changes = Change.objects.count()
    print(
        f"pages at {args.hosts:,} hosts, {services:,} services and {changes:,} changes, "
        f"{args.repeat} requests each (goal: p95 < 200 ms)",
        flush=True,
    )
    results = measure(args.repeat, args.explain, args.only)
    worst = max(results, key=lambda row: row[2])
    slow = [name for name, _, p95 in results if p95 >= 200]
    print(f"over the goal: {', '.join(slow)}" if slow else "every page under 200 ms at p95")
    worst_name = worst[0].replace(" ", "_")
    print(f"pages hosts={args.hosts} services={services} worst_p95_ms={worst[2]:.1f} worst_page={worst_name}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portwatch.settings")
    sys.exit(main())
