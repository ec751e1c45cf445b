"""Page benchmark: the main pages at 100,000 hosts and 1,000,000 services.

    make bench-pages      (python -m tests.stack python -m bench.pages)

Seeds a fresh PostgreSQL database with set-based SQL (``--hosts``, ten ports
per host: open, closed and filtered, service names and products, risk from
the built-in risk table, a policy status, tags, zones, changes, port rules
and audit entries), recounts the host summaries with the product's own
``inventory.policy.refresh_hosts``, then requests each page as a logged-in
viewer through Django's test client (the whole view, template and queries;
no HTTP server) and prints p50 / p95 per page. The anchor is the goal from
the issue: every page under 200 ms at the 95th percentile; the REST API's
main lists are timed the same way. The last line reads

    pages hosts=<n> services=<m> worst_p95_ms=<x> worst_page=<name>

Seeded addresses lie in 127.0.0.0/8 and are never scanned.
"""

import argparse
import os
import statistics
import sys
import time

from bench.common import fresh_database, setup_django

DATABASE = "portwatch_bench_pages"
PORTS_PER_HOST = 10


def seed(hosts: int) -> None:
    from django.db import connection

    from inventory import policy
    from inventory.models import Host

    # Ten ports per host, drawn from a mix of common and risky ones.
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO inventory_zone (name, description, central, created_at)
            SELECT 'dc' || z, 'bench zone', TRUE, now() FROM generate_series(1, 4) z ON CONFLICT DO NOTHING;
            INSERT INTO inventory_tag (name, description)
            SELECT 'tag-' || t, '' FROM generate_series(1, 20) t;

            INSERT INTO inventory_host (public_id, zone_id, address, hostnames, status, owner, first_seen, last_seen,
                                        last_scanned)
            SELECT gen_random_uuid(),
                   (SELECT id FROM inventory_zone ORDER BY id OFFSET (i % 5) LIMIT 1),
                   ('127.0.0.0'::inet + (i + 256))::inet,
                   jsonb_build_array('host-' || i || '.bench.example'),
                   CASE WHEN i % 50 = 0 THEN 'unreachable' ELSE 'up' END,
                   CASE WHEN i % 3 = 0 THEN 'team-' || (i % 17) ELSE '' END,
                   now() - interval '90 days', now() - (i % 1000) * interval '1 minute', now()
            FROM generate_series(1, %(hosts)s) i;

            INSERT INTO inventory_hosttag (host_id, tag_id)
            SELECT h.id, (SELECT id FROM inventory_tag ORDER BY id OFFSET (h.id % 20) LIMIT 1) FROM inventory_host h;
            INSERT INTO inventory_hosttag (host_id, tag_id)
            SELECT h.id, (SELECT id FROM inventory_tag ORDER BY id OFFSET ((h.id * 7 + 3) % 20) LIMIT 1)
            FROM inventory_host h WHERE h.id % 2 = 0 AND (h.id * 7 + 3) % 20 <> h.id % 20;

            WITH ports(slot, port, name, product) AS (VALUES
                (0, 22, 'ssh', 'OpenSSH'), (1, 80, 'http', 'nginx'), (2, 443, 'https', 'nginx'),
                (3, 3306, 'mysql', 'MySQL'), (4, 5432, 'postgresql', 'PostgreSQL'), (5, 6379, 'redis', 'Redis'),
                (6, 8080, 'http-proxy', 'Jetty'), (7, 9200, 'http', 'Elasticsearch'), (8, 25, 'smtp', 'Postfix'),
                (9, 3389, 'ms-wbt-server', ''), (10, 8443, 'https-alt', 'Tomcat'), (11, 2375, 'docker', 'Docker'),
                (12, 11211, 'memcache', 'memcached'), (13, 21, 'ftp', 'vsftpd'), (14, 23, 'telnet', ''),
                (15, 9090, 'http', 'Prometheus'))
            INSERT INTO inventory_service (host_id, protocol, port, state, name, product, version, extrainfo,
                                           identified, scripts, stale, flapping, first_seen, last_seen, last_changed,
                                           policy_status)
            SELECT h.id, 'tcp', p.port,
                   CASE WHEN (h.id + s) % 10 = 9 THEN 'closed' WHEN (h.id + s) % 23 = 0 THEN 'filtered' ELSE 'open' END,
                   p.name, p.product, '', '', TRUE, '{}'::jsonb, FALSE, FALSE,
                   now() - ((h.id * 13 + s) % 2000) * interval '1 hour', now(),
                   now() - ((h.id * 7 + s) % 1000) * interval '1 hour',
                   CASE WHEN (h.id + s * 3) % 10 < 7 THEN 'approved'
                        WHEN (h.id + s * 3) % 10 < 9 THEN 'unreviewed' ELSE 'rejected' END
            FROM inventory_host h
            CROSS JOIN generate_series(0, %(per_host)s - 1) s
            JOIN ports p ON p.slot = (h.id + s * 5) % 16;
            """.replace("%(hosts)s", str(int(hosts))).replace("%(per_host)s", str(PORTS_PER_HOST))
        )
        # Risk from the risk table (the same expression the policy uses, in one statement).
        cursor.execute(
            """
            UPDATE inventory_service s SET risk = COALESCE(
                (SELECT severity FROM inventory_riskrule r WHERE r.protocol = s.protocol AND r.port = s.port),
                (SELECT max(severity) FROM inventory_riskrule r
                  WHERE r.protocol = s.protocol AND r.service_name = s.name AND s.name <> ''), -1);

            INSERT INTO inventory_portrule (public_id, scope, cidr, protocol, port_start, port_end, decision,
                                            justification, owner, ticket, specificity, created_at, updated_at)
            SELECT gen_random_uuid(), 'cidr', '127.' || b || '.0.0/16', 'tcp', p, p,
                   CASE WHEN p IN (23, 2375) THEN 'rejected' ELSE 'approved' END, 'bench rule', '', '',
                   (3 << 24) | (112 << 16) | 65535, now(), now()
            FROM generate_series(0, 199) b CROSS JOIN (VALUES (22), (80), (443), (23), (2375)) AS ports(p);

            INSERT INTO scans_scanrun (public_id, zone_id, trigger, scanner, status, targets, ports, nmap_options,
                                       cancel_requested, hosts_total, hosts_done, hosts_up, error, created_at)
            SELECT gen_random_uuid(), (SELECT min(id) FROM inventory_zone), 'import', 'nmap', 'succeeded', 'bench', '',
                   '[]', FALSE, 0, 0, 0, '', now() - r * interval '1 hour'
            FROM generate_series(1, 50) r;

            INSERT INTO scans_change (public_id, run_id, host_id, kind, protocol, port, before, after, flapping,
                                      created_at)
            SELECT gen_random_uuid(), (SELECT min(id) FROM scans_scanrun) + (s.id % 50), s.host_id,
                   CASE WHEN s.state = 'open' THEN 'port_opened' ELSE 'port_closed' END, s.protocol, s.port,
                   '{"state": "closed"}', jsonb_build_object('state', s.state, 'name', s.name), FALSE, s.last_changed
            FROM inventory_service s WHERE s.id % 5 = 0;

            -- 30 days of the overview chart's history, a point every 15 minutes.
            INSERT INTO inventory_inventorysnapshot (taken_at, hosts, unreachable, open_ports, unreviewed, violating)
            SELECT now() - i * interval '15 minutes', %(hosts)s, i % 50, 800000 + i, 150000 - i, 50000 + i % 100
            FROM generate_series(1, 2880) i;
            """.replace("%(hosts)s", str(int(hosts)))
        )
        cursor.execute("ANALYZE")
    seeded = time.perf_counter() - started
    started = time.perf_counter()
    policy.refresh_hosts(Host.objects.all())
    summarised = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"seeded {hosts:,} hosts in {seeded:.1f} s; host summaries (policy.refresh_hosts) in {summarised:.1f} s")


def pages() -> list[tuple]:
    from django.urls import reverse

    from inventory.models import Host, Service, Zone
    from scans.models import ScanProfile, ScanTarget

    host = Host.objects.order_by("pk")[Host.objects.count() // 2]
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
        ("hosts page 200", f"{hosts}?page=200"),
        ("hosts sort=risk", f"{hosts}?sort=risk"),
        ("hosts sort=violating", f"{hosts}?sort=violating"),
        ("hosts sort=changed", f"{hosts}?sort=changed"),
        ("hosts q=network", f"{hosts}?q=127.1.0.0/20"),
        ("hosts q=6379", f"{hosts}?q=6379"),
        ("hosts q=hostname", f"{hosts}?q=host-4242"),
        ("hosts q=product", f"{hosts}?q=Elasticsearch"),
        ("hosts zone+unreviewed", f"{hosts}?zone=dc1&policy=unreviewed"),
        ("hosts tag+violating", f"{hosts}?tag=tag-3&policy=violating&risk=3"),
        ("hosts changed 1d", f"{hosts}?changed=1&sort=changed"),
        ("ports", ports),
        ("ports port=6379", f"{ports}?port=6379"),
        ("ports unreviewed dc1", f"{ports}?policy=unreviewed&zone=dc1"),
        ("ports q=redis", f"{ports}?q=redis"),
        ("ports q=network", f"{ports}?q=127.1.0.0/24"),
        ("ports tag+risk", f"{ports}?tag=tag-5&risk=3"),
        ("ports sort=port", f"{ports}?sort=port"),
        ("review queue", queue),
        ("review queue dc2", f"{queue}?zone=dc2"),
        ("host detail", host.get_absolute_url()),
        ("port detail", service.get_absolute_url()),
        ("rules", reverse("rule-list")),
        ("audit", reverse("audit-list")),
        ("overview 30 d", f"{reverse('overview')}?range=30"),
        ("overview poll", reverse("overview"), {"HX-Request": "true"}),
        ("changes", changes),
        ("changes unreviewed risk", f"{changes}?policy=unreviewed&risk=3"),
        ("changes closed dc1 7d", f"{changes}?kind=port_closed&zone=dc1&within=7"),
        ("changes tag", f"{changes}?tag=tag-3"),
        ("metrics", reverse("metrics")),
        ("api hosts", "/api/hosts/"),
        ("api services unreviewed", "/api/services/?policy=unreviewed&zone=dc1"),
        ("api changes", "/api/changes/"),
        ("api changes port_closed", "/api/changes/?kind=port_closed&within=7"),
    ]


def measure(repeat: int) -> list[tuple[str, float, float]]:
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.test import Client, override_settings

    from portwatch.roles import GROUP_NAMES, Role

    viewer = User.objects.create_user("bench-viewer")
    viewer.groups.add(Group.objects.get(name=GROUP_NAMES[Role.VIEWER]))
    client = Client()
    client.force_login(viewer)
    results = []
    # Static URLs without the collectstatic manifest (the pages are what is timed).
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    storages = {**settings.STORAGES, "staticfiles": plain}
    with override_settings(STORAGES=storages):
        for name, url, *headers in pages():
            results.append(_time_page(client, name, url, repeat, *headers))
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
    print(f"  {name:<24} p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms   {url}", flush=True)
    return name, statistics.median(times), p95


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    # DEBUG off, as in production (DEBUG keeps every query in memory).
    setup_django(fresh_database(DATABASE), DEBUG="false", ALLOWED_HOSTS="testserver")
    seed(args.hosts)
    from inventory.models import Service

    services = Service.objects.count()
    print(f"pages at {args.hosts:,} hosts and {services:,} services, {args.repeat} requests each (goal: p95 < 200 ms)")
    results = measure(args.repeat)
    worst = max(results, key=lambda row: row[2])
    slow = [name for name, _, p95 in results if p95 >= 200]
    print(f"over the goal: {', '.join(slow)}" if slow else "every page under 200 ms at p95")
    worst_name = worst[0].replace(" ", "_")
    print(f"pages hosts={args.hosts} services={services} worst_p95_ms={worst[2]:.1f} worst_page={worst_name}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portwatch.settings")
    sys.exit(main())
