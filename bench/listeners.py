"""Host reports benchmark: a report of 10,000 sockets taken in, and 100,000 hosts' reports reconciled.

    python -m tests.stack python -m bench.listeners --hosts 100000

1. After 2 (on the same database), one host's ``ss -Htulnp`` report of 10,000 listening sockets (TCP and
   UDP, on every interface, an address and loopback), taken in as the API
   takes it (``listeners.intake.read`` then ``listeners.reports.take``:
   parse, replace the listeners, record the changes, judge the host's
   ports), first into an empty host, then again with 2 % of the sockets
   changed. Anchor: PostgreSQL's COPY of the same 10,000 rows into a bare
   table, the least any import must do (measured in the same run).
2. First, ``--hosts`` hosts (``bench.seed``: ten ports a host, so 1M services),
   each with a report of 13 sockets (its ten ports, on every interface, an
   address or loopback, two loopback-only daemons and one port no scan
   probes), written in SQL; then every host's ports judged in one statement
   (``listeners.findings.refresh()``). Anchor: the join the judging cannot
   avoid (each listener with its port's row in the inventory), counted.
3. As a viewer, 20 requests each: the overview (its findings are kept
   counts), the hosts list filtered by a finding, the ports list filtered
   by one, and a host's page with its own view.

Wall time and CPU time (this process; PostgreSQL's backend where it can be
read) are printed beside each other. The last line reads
``listeners report_sockets=10000 import_ms=<x> copy_ratio=<x/copy> hosts=<n> reconcile_s=<y>
ratio=<y/anchor> worst_page_p95_ms=<z>`` (one line).
Seeded addresses lie in 127.0.0.0/8 and are never scanned.
"""

import argparse
import io
import os
import random
import statistics
import sys
import time

from bench.common import fresh_database, measure_page, setup_django
from bench.ingest import cpu_seconds_of, own_cpu_seconds

DATABASE = "portwatch_bench_listeners"
SOCKETS = 10_000


def ss_report(sockets: int, *, seed: int, churn: float = 0.0) -> str:
    """An ss -Htulnp report of ``sockets`` listeners on ports 1024-65535; ``churn`` of them moved."""
    chooser = random.Random(seed)
    lines = []
    for index in range(sockets):
        protocol = "tcp" if index % 4 else "udp"
        port = 1024 + index * 5 % 64000
        address = ("0.0.0.0", "127.0.0.1", "127.60.0.2", "[::]")[index % 4]  # noqa: S104 - text of a report
        if churn and chooser.random() < churn:
            port = 1024 + (port + 7) % 64000  # moved: one removed, one added
        state = "LISTEN" if protocol == "tcp" else "UNCONN"
        owner = f'users:(("daemon-{index % 97}",pid={1000 + index},fd=3))'
        lines.append(f"{protocol} {state} 0 128 {address}:{port} 0.0.0.0:* {owner}")
    return "\n".join(lines) + "\n"


def backend_of(connection) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    return backend


def measured(label: str, connection, action):
    """Run ``action``; print and return wall seconds, this process's CPU and PostgreSQL's backend's CPU."""
    backend = backend_of(connection)
    database_start, own_start = cpu_seconds_of(backend), own_cpu_seconds()
    started = time.perf_counter()
    result = action()
    wall = time.perf_counter() - started
    own = own_cpu_seconds() - own_start
    database_end = cpu_seconds_of(backend)
    database = database_end - database_start if database_start is not None and database_end is not None else None
    shown = f"{database:.2f} s" if database is not None else "not readable"
    print(f"  {label:<52} {wall * 1000:9,.0f} ms   cpu here {own:6.2f} s + PostgreSQL {shown}", flush=True)
    return wall, result


def import_report(connection) -> tuple[float, float]:
    from django.db import transaction
    from django.utils import timezone

    from inventory.models import Host, Zone
    from listeners import intake, reports
    from listeners.choices import ReportSource

    now = timezone.now()
    host = Host.objects.create(
        zone=Zone.default(), address="127.60.0.2", first_seen=now, last_seen=now, last_scanned=now
    )
    first, second = ss_report(SOCKETS, seed=1).encode(), ss_report(SOCKETS, seed=1, churn=0.02).encode()

    def take(data):
        return reports.take(host, intake.read(data, "ss"), source=ReportSource.API)

    wall_first, imported = measured(f"import {SOCKETS:,} sockets into an empty host", connection, lambda: take(first))
    print(f"    {imported.summary}")
    _, imported = measured(f"import {SOCKETS:,} sockets again, 2 % moved", connection, lambda: take(second))
    print(f"    {imported.summary}")

    # The anchor: COPY of the same rows into a bare table.
    rows = io.StringIO()
    for line in first.decode().splitlines():
        protocol, _state, _r, _s, local, *_ = line.split()
        address, _, port = local.rpartition(":")
        rows.write(f"{host.pk}\t{protocol}\t{address}\t{port}\n")

    def copy():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE bare (host_id int, protocol text, address text, port int) ON COMMIT DROP")
            with cursor.cursor.copy("COPY bare FROM STDIN") as stream:
                stream.write(rows.getvalue())

    copies = [measured("anchor: COPY of the same rows into a bare table", connection, copy)[0] for _ in range(3)]
    return wall_first, statistics.median(copies)


SEED_REPORTS = """
INSERT INTO listeners_hostreport (public_id, host_id, format, taken_at, received_at, source, host_name, sockets,
                                  skipped, applied)
SELECT gen_random_uuid(), h.id, 'ss', now(), now(), 'api', '', 13, 0, TRUE FROM inventory_host h;
INSERT INTO listeners_listener (host_id, report_id, protocol, address, port, interface, scope, process, pid, "user",
                                first_seen)
SELECT s.host_id, r.id, s.protocol,
       CASE s.port % 3 WHEN 0 THEN '0.0.0.0' WHEN 1 THEN host(h.address) ELSE '127.0.0.1' END, s.port, '',
       CASE s.port % 3 WHEN 0 THEN 'all' WHEN 1 THEN 'address' ELSE 'loopback' END, 'daemon', 1000 + s.port, 'root',
       now()
FROM inventory_service s JOIN inventory_host h ON h.id = s.host_id JOIN listeners_hostreport r ON r.host_id = s.host_id;
INSERT INTO listeners_listener (host_id, report_id, protocol, address, port, interface, scope, process, pid, "user",
                                first_seen)
SELECT r.host_id, r.id, 'tcp', a.address, a.port, '', a.scope, 'extra', 1, 'root', now()
FROM listeners_hostreport r
CROSS JOIN (VALUES ('127.0.0.1', 5433, 'loopback'), ('127.0.0.1', 6380, 'loopback'), ('0.0.0.0', 47001, 'all'))
    AS a(address, port, scope);
ANALYZE listeners_hostreport;
ANALYZE listeners_listener;
"""

ANCHOR = """
SELECT count(*) FROM listeners_listener l
JOIN inventory_service s ON s.host_id = l.host_id AND s.protocol = l.protocol AND s.port = l.port
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    setup_django(fresh_database(DATABASE), DEBUG="false", ALLOWED_HOSTS="testserver")
    from django.db import connection

    from bench.seed import seed

    started = time.perf_counter()
    seed(args.hosts, verbose=False)
    with connection.cursor() as cursor:
        cursor.execute(SEED_REPORTS)
        cursor.execute("SELECT count(*) FROM listeners_listener")
        (listeners,) = cursor.fetchone()
    seconds = time.perf_counter() - started
    print(f"seeded {args.hosts:,} hosts and their reports ({listeners:,} listeners) in {seconds:.0f} s")

    from django.db.models import Count

    from listeners import findings
    from listeners.models import PortFinding

    print(f"{args.hosts:,} hosts' reports reconciled with the scans:", flush=True)
    reconcile_s, judged = measured("every host's ports judged (findings.refresh)", connection, findings.refresh)
    print(f"    {judged:,} findings kept")
    with connection.cursor() as cursor:
        # As autovacuum would soon after 1.3M rows: the pages below are timed with statistics, not mid-analyze.
        cursor.execute("ANALYZE listeners_portfinding")

    def anchor():
        with connection.cursor() as cursor:
            cursor.execute(ANCHOR)
            return cursor.fetchone()[0]

    anchors = [measured("anchor: each listener joined with its port's row", connection, anchor)[0] for _ in range(3)]
    anchor_s = statistics.median(anchors)
    by_finding = dict(PortFinding.objects.values_list("finding").annotate(n=Count("pk")).order_by())
    print(f"    findings: {', '.join(f'{name} {n:,}' for name, n in sorted(by_finding.items()))}")

    from django.conf import settings

    print(f"a report of {SOCKETS:,} sockets (ss -Htulnp), on the same database:", flush=True)
    import_s, copy_s = import_report(connection)

    from django.contrib.auth.models import Group, User
    from django.test import Client, override_settings
    from django.urls import reverse

    from inventory.models import Host
    from portwatch.roles import GROUP_NAMES, Role
    from tallies import maintenance

    maintenance.compact()
    viewer, _ = User.objects.get_or_create(username="bench-viewer")
    viewer.groups.add(Group.objects.get(name=GROUP_NAMES[Role.VIEWER]))
    client = Client()
    client.force_login(viewer)
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain}).enable()
    host = Host.objects.order_by("pk")[args.hosts // 2]
    pages = [
        ("overview", reverse("overview")),
        ("hosts shielded only by a firewall", f"{reverse('host-list')}?finding=shielded"),
        ("hosts with a port reachable, not listening", f"{reverse('host-list')}?finding=forwarded"),
        ("ports listening and reachable", f"{reverse('port-list')}?finding=exposed"),
        ("a host's page with its own view", host.get_absolute_url()),
    ]
    print(f"pages ({args.repeat} requests each, as a viewer):")
    worst = max(measure_page(client, name, url, args.repeat)[2] for name, url in pages)
    print(
        f"listeners report_sockets={SOCKETS} import_ms={import_s * 1000:.0f} copy_ratio={import_s / copy_s:.1f} "
        f"hosts={args.hosts} reconcile_s={reconcile_s:.1f} ratio={reconcile_s / anchor_s:.2f} "
        f"worst_page_p95_ms={worst:.1f}"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portwatch.settings")
    sys.exit(main())
