"""A large inventory in minutes, for the page and load benchmarks.

    seed(hosts=1_000_000)    # ten ports a host, a fifth of them with a change

What a bulk load costs is not the rows but their upkeep: every row written
into an indexed, constrained, triggered table updates each index, checks
each foreign key and feeds the kept counts' triggers. So the seed loads the
big tables bare and builds their upkeep once, afterwards:

1. the big tables' secondary indexes and constraints are read from the
   catalogue (whatever the migrations made them today) and dropped;
2. the rows are generated inside PostgreSQL with set-based ``INSERT ...
   SELECT`` over ``generate_series`` (nothing crosses the wire, which is
   what COPY would save) with triggers off for the session
   (``session_replication_role = replica``);
3. the product's own ``inventory.policy.refresh_hosts`` recounts the host
   summaries, the indexes and constraints are rebuilt from their saved
   definitions (foreign keys validated), and the kept counts are rebuilt
   from the inventory (``tallies.maintenance.rebuild``), so the overview
   reads exactly what ``manage.py tallies check`` would expect.

The shape: four zones; twenty tags of very different sizes (``tag-20`` on
half the hosts, ``tag-19`` on one host in ten thousand, the rest about 5 %
each), so a filter's plan is tried on a huge and a tiny tag; ten TCP ports a
host from sixteen common and risky ones (open, closed, filtered); policy
statuses and risks as the product computes them; 2,000 runs over six weeks
and a change for every fifth port; 30 days of the overview's chart.
Addresses lie in 127.0.0.0/8 and are never scanned.
"""

import time

BIG_TABLES = ("inventory_host", "inventory_hosttag", "inventory_service", "scans_change")
PORTS_PER_HOST = 10
RUNS = 2_000


def seed(hosts: int, *, verbose: bool = True) -> dict[str, float]:
    """Seed ``hosts`` hosts into the (freshly migrated) default database; return the phases' seconds."""
    from django.db import connection, transaction

    from inventory import policy
    from inventory.models import Host
    from tallies import maintenance

    phases: dict[str, float] = {}

    def phase(name: str, started: float) -> float:
        phases[name] = time.perf_counter() - started
        if verbose:
            print(f"  seed: {name} in {phases[name]:.1f} s", flush=True)
        return time.perf_counter()

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SET LOCAL session_replication_role = replica")
        upkeep = _drop_upkeep(cursor)
        started = phase("dropped indexes and constraints", started)
        _insert_rows(cursor, hosts)
        started = phase(f"rows ({hosts:,} hosts)", started)
        cursor.execute(f"ANALYZE {', '.join(BIG_TABLES)}")
        policy.refresh_hosts(Host.objects.all())
        started = phase("host summaries (policy.refresh_hosts)", started)
        for statement in upkeep:
            cursor.execute(statement)
        started = phase(f"rebuilt {len(upkeep)} indexes and constraints", started)
    maintenance.rebuild()
    started = phase("kept counts (tallies rebuild)", started)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    phase("VACUUM ANALYZE", started)
    return phases


def _drop_upkeep(cursor) -> list[str]:
    """Drop the big tables' secondary indexes and constraints; return the statements that rebuild them.

    Read from the catalogue rather than listed here, so a migration that adds
    an index is benchmarked with it. Primary keys stay (rows are found by id
    while loading); CHECK constraints stay (they cost nothing to keep).
    """
    cursor.execute(
        """
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype
        FROM pg_constraint c
        WHERE c.conrelid = ANY(%s::regclass[]) AND c.contype IN ('u', 'f')
        ORDER BY c.contype DESC  -- unique before foreign keys when rebuilding
        """,
        [list(BIG_TABLES)],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        """,
        [list(BIG_TABLES)],
    )
    indexes = cursor.fetchall()
    for table, name, _, _ in sorted(constraints, key=lambda row: row[3]):  # foreign keys first
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    return [definition for _, definition in indexes] + [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}' for table, name, definition, _ in constraints
    ]


def _insert_rows(cursor, hosts: int) -> None:
    sizes = {"hosts": int(hosts), "per_host": PORTS_PER_HOST, "runs": RUNS}
    for statement in SEED_SQL.split(";\n\n"):
        cursor.execute(statement.format(**sizes))


SEED_SQL = """
INSERT INTO inventory_zone (name, description, central, created_at)
SELECT 'dc' || z, 'bench zone', TRUE, now() FROM generate_series(1, 4) z ON CONFLICT DO NOTHING;

INSERT INTO inventory_tag (name, description)
SELECT 'tag-' || t, 'bench tag' FROM generate_series(1, 20) t ON CONFLICT DO NOTHING;

INSERT INTO inventory_host (public_id, zone_id, address, hostnames, status, owner, first_seen, last_seen,
                            last_scanned, open_count, risk, unreviewed_count, violating_count)
SELECT gen_random_uuid(),
       (SELECT id FROM inventory_zone WHERE name = 'dc' || (1 + i % 4)),
       '127.0.0.0'::inet + (i + 256),
       jsonb_build_array('host-' || i || '.bench.example'),
       CASE WHEN i % 50 = 0 THEN 'unreachable' ELSE 'up' END,
       CASE WHEN i % 3 = 0 THEN 'team-' || (i % 17) ELSE '' END,
       now() - interval '90 days', now() - (i % 1000) * interval '1 minute', now(),
       0, -1, 0, 0
FROM generate_series(1, {hosts}) i;

CREATE TEMPORARY TABLE bench_tags ON COMMIT DROP AS
SELECT substr(name, 5)::int AS n, id FROM inventory_tag WHERE name ~ '^tag-[0-9]+$';

INSERT INTO inventory_hosttag (host_id, tag_id)
SELECT h.id, t.id FROM inventory_host h JOIN bench_tags t ON t.n = 1 + h.id % 18;

INSERT INTO inventory_hosttag (host_id, tag_id)
SELECT h.id, (SELECT id FROM bench_tags WHERE n = 20) FROM inventory_host h WHERE h.id % 2 = 0;

INSERT INTO inventory_hosttag (host_id, tag_id)
SELECT h.id, (SELECT id FROM bench_tags WHERE n = 19) FROM inventory_host h WHERE h.id % 10000 = 7;

-- The sixteen ports hosts draw from, with their risk as the policy computes it
-- (the risk table's rule for the port, else the highest for the service name).
CREATE TEMPORARY TABLE bench_ports ON COMMIT DROP AS
SELECT p.slot, p.port, p.name, p.product,
       COALESCE((SELECT severity FROM inventory_riskrule r WHERE r.protocol = 'tcp' AND r.port = p.port),
                (SELECT max(severity) FROM inventory_riskrule r
                  WHERE r.protocol = 'tcp' AND r.service_name = p.name AND p.name <> ''), -1) AS risk
FROM (VALUES
    (0, 22, 'ssh', 'OpenSSH'), (1, 80, 'http', 'nginx'), (2, 443, 'https', 'nginx'),
    (3, 3306, 'mysql', 'MySQL'), (4, 5432, 'postgresql', 'PostgreSQL'), (5, 6379, 'redis', 'Redis'),
    (6, 8080, 'http-proxy', 'Jetty'), (7, 9200, 'http', 'Elasticsearch'), (8, 25, 'smtp', 'Postfix'),
    (9, 3389, 'ms-wbt-server', ''), (10, 8443, 'https-alt', 'Tomcat'), (11, 2375, 'docker', 'Docker'),
    (12, 11211, 'memcache', 'memcached'), (13, 21, 'ftp', 'vsftpd'), (14, 23, 'telnet', ''),
    (15, 9090, 'http', 'Prometheus')
) AS p(slot, port, name, product);

INSERT INTO inventory_service (host_id, protocol, port, state, name, product, version, extrainfo,
                               identified, scripts, stale, flapping, first_seen, last_seen, last_changed,
                               policy_status, risk)
SELECT h.id, 'tcp', p.port,
       CASE WHEN (h.id + s) % 10 = 9 THEN 'closed' WHEN (h.id + s) % 23 = 0 THEN 'filtered' ELSE 'open' END,
       p.name, p.product, '', '', TRUE, '{{}}'::jsonb, FALSE, FALSE,
       now() - ((h.id * 13 + s) % 2000) * interval '1 hour', now(),
       now() - ((h.id * 7 + s) % 1000) * interval '1 hour',
       CASE WHEN (h.id + s * 3) % 10 < 7 THEN 'approved'
            WHEN (h.id + s * 3) % 10 < 9 THEN 'unreviewed' ELSE 'rejected' END,
       p.risk
FROM inventory_host h
CROSS JOIN generate_series(0, {per_host} - 1) s
JOIN bench_ports p ON p.slot = (h.id + s * 5) % 16;

INSERT INTO inventory_portrule (public_id, scope, cidr, protocol, port_start, port_end, decision,
                                justification, owner, ticket, specificity, created_at, updated_at)
SELECT gen_random_uuid(), 'cidr', '127.' || b || '.0.0/16', 'tcp', p, p,
       CASE WHEN p IN (23, 2375) THEN 'rejected' ELSE 'approved' END, 'bench rule', '', '',
       (3 << 24) | (112 << 16) | 65535, now(), now()
FROM generate_series(0, 15) b CROSS JOIN (VALUES (22), (80), (443), (23), (2375)) AS ports(p);

INSERT INTO scans_scanrun (public_id, zone_id, trigger, scanner, status, targets, ports, nmap_options,
                           masscan_options, cancel_requested, hosts_total, hosts_done, hosts_up, error, created_at,
                           started_at, finished_at)
SELECT gen_random_uuid(), (SELECT id FROM inventory_zone WHERE name = 'dc' || (1 + r % 4)), 'import', 'nmap',
       'succeeded', 'bench', '', '[]', '{{}}', FALSE, 0, 0, 0, '',
       now() - r * interval '30 minutes', now() - r * interval '30 minutes', now() - r * interval '30 minutes'
FROM generate_series(1, {runs}) r;

-- A change for every fifth port, in the run of its time (a run every half hour, newest first).
INSERT INTO scans_change (public_id, run_id, host_id, kind, protocol, port, before, after, flapping, created_at)
SELECT gen_random_uuid(),
       runs.first + LEAST({runs} - 1, GREATEST(0, (extract(epoch FROM now() - s.last_changed) / 1800)::int - 1)),
       s.host_id,
       CASE WHEN s.state = 'open' THEN 'port_opened' ELSE 'port_closed' END, s.protocol, s.port,
       '{{"state": "closed"}}', jsonb_build_object('state', s.state, 'name', s.name), FALSE, s.last_changed
FROM inventory_service s
CROSS JOIN (SELECT min(id) AS first FROM scans_scanrun) runs
WHERE s.id % 5 = 0;

-- 30 days of the overview chart's history, a point every 15 minutes.
INSERT INTO inventory_inventorysnapshot (taken_at, hosts, unreachable, open_ports, unreviewed, violating)
SELECT now() - i * interval '15 minutes', {hosts}, i % 50, {hosts} * 8 + i, GREATEST({hosts} - i, 0),
       {hosts} / 20 + i % 100
FROM generate_series(1, 2880) i
"""
