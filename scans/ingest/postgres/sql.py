"""The diff in set-based SQL: the PostgreSQL engine's statements, in the order they run.

The same semantics as ``scans.ingest.diff`` (the specification, and the ORM
engine's), written over staging tables so that a scan of 262k hosts is
diffed without a round trip per host or port (``apply.apply_staged`` runs
them):

1. ``CREATE_STAGING``: ``pw_obs`` receives the observations' COPY rows
   (``copy_rows``), ``pw_silent`` the covered but silent addresses,
   ``pw_probed`` the probed ranges, ``pw_unconfirmed`` what the re-probe
   contradicted;
2. ``HOSTS``: ``pw_h`` joins observed and silent addresses to the known
   hosts; new hosts are inserted;
3. ``HOST_WRITES``: known hosts updated, host-level changes recorded;
4. ``PORTS``: ``pw_listed`` lines up every port the scan observed (listed,
   or known and covered by a summary within the probed set) with the known
   service; the staged ports (``StagedPort``) get the merged service fields
   and the change kind; ``pw_flap`` counts recent toggles;
5. ``PORT_WRITES``, ``PORT_UPDATES``: changes inserted, services inserted
   and updated.

Tables and choice values are filled in from the models (``template``);
values from the scan are parameters. Statements end with ";" at the end of a
line, and nothing else in these scripts does (``statements``).
"""

import re

from scans.ingest.postgres.template import sql

CREATE_STAGING = sql(
    "create_staging",
    """
-- For this transaction only: the planner's cost estimates for these joins are
-- high enough to trigger JIT compilation, which costs more than it saves here,
-- and the sorts of a large scan fit in memory with a little more work_mem.
SET LOCAL jit = off;
SET LOCAL work_mem = '64MB';
DROP TABLE IF EXISTS pw_obs, pw_sets, pw_silent, pw_probed, pw_unconfirmed, pw_h, pw_listed, {StagedPort}, pw_flap;
CREATE TEMP TABLE pw_obs (
    row_kind "char", address inet, up boolean, timed_out boolean, hostnames jsonb, other_state text,
    -- array literals kept as text: only the hosts whose port list changed
    -- (in a large scan, most are unchanged) are ever read as arrays (pw_listed)
    protocols text, ports text, states text, names text,
    protocol text, port integer, port_hi integer, state text, name text, product text, version text,
    extrainfo text, identified boolean, scripts jsonb, sig bigint
) ON COMMIT DROP;
CREATE TEMP TABLE pw_sets (set_id bigint, protocol text, lo integer, hi integer) ON COMMIT DROP;
CREATE TEMP TABLE pw_silent (address inet) ON COMMIT DROP;
CREATE TEMP TABLE pw_probed (protocol text, lo integer, hi integer) ON COMMIT DROP;
CREATE TEMP TABLE pw_unconfirmed (address inet, protocol text, port integer) ON COMMIT DROP;
""",
)

HOSTS = sql(
    "hosts",
    """
ANALYZE pw_obs (row_kind, address);
CREATE TEMP TABLE pw_h ON COMMIT DROP AS
WITH candidates AS (
    SELECT address, up, timed_out, hostnames, other_state, sig FROM pw_obs WHERE row_kind = {StagedRow.HOST}
    UNION ALL
    SELECT s.address, FALSE, FALSE, NULL, NULL, NULL FROM pw_silent s
    WHERE NOT EXISTS (SELECT 1 FROM pw_obs o WHERE o.row_kind = {StagedRow.HOST} AND o.address = s.address)
)
SELECT c.address, c.up, c.timed_out, c.hostnames, c.other_state,
       h.id AS host_id, h.status AS old_status, h.id IS NULL AS is_new,
       h.last_seen AS old_last_seen, h.seen_ports_id AS old_set,
       -- what this scan probed on the host, if it can vouch for it
       CASE WHEN c.up AND NOT c.timed_out THEN %(probed_set)s::bigint END AS new_set,
       -- the signature to keep: only if applying this scan leaves nothing pending
       CASE WHEN NOT %(any_unconfirmed)s THEN c.sig END AS sig,
       -- the same port list as last time, under the same coverage: nothing can change
       COALESCE(c.up AND h.status = {HostStatus.UP} AND c.sig = h.ports_sig AND h.seen_ports_id = %(probed_set)s::bigint
                AND NOT %(any_unconfirmed)s, FALSE) AS unchanged
FROM candidates c
-- Each address looked up in the (zone, address) index: a hash join would read
-- every host of the inventory, every batch. (OFFSET 0 keeps it a lookup.)
LEFT JOIN LATERAL (SELECT * FROM {Host} h WHERE h.zone_id = %(zone)s AND h.address = c.address OFFSET 0) h ON TRUE
WHERE (h.id IS NOT NULL OR c.up)
  -- older observations never override newer ones (an old file imported late)
  AND (%(observed_at)s::timestamptz IS NULL OR h.id IS NULL OR h.last_scanned <= %(observed_at)s::timestamptz);

WITH inserted AS (
    INSERT INTO {Host} (public_id, zone_id, address, hostnames, status, owner, first_seen, last_seen,
                                last_scanned, seen_ports_id, ports_sig)
    SELECT gen_random_uuid(), %(zone)s, address, COALESCE(hostnames, '[]'::jsonb), {HostStatus.UP}, '',
           %(now)s, %(now)s, %(now)s, new_set, sig
    FROM pw_h WHERE is_new
    RETURNING id, address
)
UPDATE pw_h SET host_id = inserted.id FROM inserted WHERE pw_h.address = inserted.address;

ANALYZE pw_h;
""",
)

# After HOSTS: the old coverage sets of the hosts are loaded into pw_sets.
HOST_WRITES = sql(
    "host_writes",
    """
-- A host whose coverage changes keeps, for each port, the "last seen" its
-- old coverage gave it (see inventory.models.Service.seen_at).
UPDATE {Service} s SET last_seen = p.old_last_seen
FROM pw_h p
WHERE s.host_id = p.host_id AND p.up AND NOT p.is_new AND p.old_set IS DISTINCT FROM p.new_set
  AND s.state <> {PortState.CLOSED} AND s.last_seen < p.old_last_seen
  AND EXISTS (SELECT 1 FROM pw_sets r
              WHERE r.set_id = p.old_set AND r.protocol = s.protocol AND s.port BETWEEN r.lo AND r.hi);

UPDATE {Host} h SET
    status = CASE WHEN p.up THEN {HostStatus.UP} ELSE {HostStatus.UNREACHABLE} END,
    last_scanned = %(now)s,
    last_seen = CASE WHEN p.up THEN %(now)s ELSE h.last_seen END,
    seen_ports_id = CASE WHEN p.up THEN p.new_set ELSE h.seen_ports_id END,
    ports_sig = CASE WHEN p.up THEN p.sig ELSE h.ports_sig END,
    hostnames = CASE WHEN p.up AND p.hostnames IS NOT NULL AND p.hostnames <> '[]'::jsonb
                     THEN p.hostnames ELSE h.hostnames END
FROM pw_h p WHERE h.id = p.host_id AND NOT p.is_new;

-- A silent host's ports are kept as last seen, marked stale.
UPDATE {Service} s SET stale = TRUE FROM pw_h p
WHERE s.host_id = p.host_id AND NOT p.up AND s.state <> {PortState.CLOSED} AND NOT s.stale;

INSERT INTO {Change}
    (public_id, run_id, vantage_id, chunk_id, host_id, kind, protocol, port, before, after, flapping, created_at)
SELECT gen_random_uuid(), %(run)s, %(vantage)s, %(chunk)s, host_id, kind, '', NULL, before, after, FALSE, %(now)s FROM (
    SELECT host_id, {ChangeKind.HOST_DISCOVERED} AS kind, NULL::jsonb AS before,
           jsonb_build_object('status', {HostStatus.UP}, 'hostnames', COALESCE(hostnames, '[]'::jsonb)) AS after
    FROM pw_h WHERE is_new
    UNION ALL
    SELECT host_id, {ChangeKind.HOST_RETURNED},
           jsonb_build_object('status', {HostStatus.UNREACHABLE}), jsonb_build_object('status', {HostStatus.UP})
    FROM pw_h WHERE NOT is_new AND up AND old_status = {HostStatus.UNREACHABLE}
    UNION ALL
    SELECT host_id, {ChangeKind.HOST_UNREACHABLE},
           jsonb_build_object('status', {HostStatus.UP}), jsonb_build_object('status', {HostStatus.UNREACHABLE})
    FROM pw_h WHERE NOT is_new AND NOT up AND old_status = {HostStatus.UP}
) host_changes;
""",
)

PORTS = sql(
    "ports",
    """
-- Every port nmap listed on a host that answered: the plain ones from the
-- host rows' arrays, the others from their own rows.
CREATE TEMP TABLE pw_listed ON COMMIT DROP AS
SELECT h.host_id, h.is_new, h.address, h.timed_out, x.protocol, x.port, x.state, x.name,
       '' AS product, '' AS version, '' AS extrainfo, FALSE AS identified, NULL::jsonb AS scripts
FROM pw_obs o JOIN pw_h h ON h.address = o.address AND h.up AND NOT h.unchanged
CROSS JOIN LATERAL unnest(o.protocols::text[], o.ports::integer[], o.states::text[], o.names::text[])
    AS x(protocol, port, state, name)
WHERE o.row_kind = {StagedRow.HOST}
UNION ALL
SELECT h.host_id, h.is_new, h.address, h.timed_out, o.protocol, o.port, o.state, o.name,
       o.product, o.version, o.extrainfo, o.identified, o.scripts
FROM pw_obs o JOIN pw_h h ON h.address = o.address AND h.up AND NOT h.unchanged
WHERE o.row_kind = {StagedRow.PORT};

-- Listed ports against the known ports of the hosts that answered. A row is
-- kept only when something must be written: a change, a new port, merged
-- service fields, a stale mark to clear. A port seen again unchanged is not
-- rewritten: its "last seen" follows its host's.
CREATE TEMP TABLE {StagedPort} ON COMMIT DROP AS
WITH known AS (
    SELECT s.id, s.host_id, s.protocol, s.port, s.state, s.name, s.product, s.version, s.extrainfo,
           s.identified, s.scripts, s.stale, h.address, h.timed_out, h.other_state
    FROM pw_h h
    -- The services of each host, looked up by its id: a merge join would read the
    -- services' index from the lowest host id to the batch's highest, every batch.
    -- (OFFSET 0 keeps the planner from turning this back into a plain join.)
    CROSS JOIN LATERAL (SELECT * FROM {Service} s WHERE s.host_id = h.host_id OFFSET 0) s
    WHERE h.up AND NOT h.is_new AND NOT h.unchanged
), observed AS MATERIALIZED (
    SELECT COALESCE(l.host_id, k.host_id) AS host_id,
           COALESCE(l.protocol, k.protocol) AS protocol,
           COALESCE(l.port, k.port) AS port,
           l.port IS NOT NULL AS listed,
           COALESCE(l.is_new, FALSE) AS new_host,
           COALESCE(l.timed_out, k.timed_out) AS timed_out,
           l.name, l.product, l.version, l.extrainfo, l.identified, l.scripts,
           k.id AS service_id, k.state AS old_state, k.name AS old_name, k.product AS old_product,
           k.version AS old_version, k.extrainfo AS old_extrainfo, k.identified AS old_identified,
           k.scripts AS old_scripts, k.stale AS old_stale,
           CASE
               -- the re-probe contradicted it: not observed
               WHEN %(any_unconfirmed)s AND EXISTS (
                   SELECT 1 FROM pw_unconfirmed u WHERE u.address = COALESCE(l.address, k.address)
                     AND u.protocol = COALESCE(l.protocol, k.protocol) AND u.port = COALESCE(l.port, k.port)
               ) THEN NULL
               WHEN l.port IS NOT NULL THEN
                   -- a host nmap gave up on proves nothing closed
                   CASE WHEN l.timed_out AND l.state <> {PortState.OPEN} THEN NULL ELSE l.state END
               WHEN k.timed_out THEN NULL
               -- a known port nmap did not list: the state of its summary, within the probed set
               WHEN NOT EXISTS (SELECT 1 FROM pw_probed r
                                WHERE r.protocol = k.protocol AND k.port BETWEEN r.lo AND r.hi) THEN NULL
               ELSE COALESCE(k.other_state, (
                   SELECT x.state FROM pw_obs x
                   WHERE x.row_kind = {StagedRow.RANGE} AND x.address = k.address AND x.protocol = k.protocol
                     AND k.port BETWEEN x.port AND x.port_hi
                   LIMIT 1))
           END AS new_state
    FROM pw_listed l
    FULL JOIN known k ON k.host_id = l.host_id AND k.protocol = l.protocol AND k.port = l.port
), merged AS (
    -- a guess from the port number never overwrites an identification, and
    -- an unlisted port keeps what is known of it
    SELECT o.*,
           CASE WHEN o.keep THEN o.old_name ELSE o.name END AS new_name,
           CASE WHEN o.keep THEN o.old_product ELSE o.product END AS new_product,
           CASE WHEN o.keep THEN o.old_version ELSE o.version END AS new_version,
           CASE WHEN o.keep THEN o.old_extrainfo ELSE o.extrainfo END AS new_extrainfo,
           CASE WHEN o.keep THEN o.old_identified ELSE o.identified END AS new_identified,
           CASE WHEN o.scripts <> '{{}}'::jsonb THEN o.scripts END AS seen_scripts
    FROM (
        SELECT observed.*,
               service_id IS NOT NULL AND (NOT listed OR (old_identified AND NOT identified)) AS keep
        FROM observed
        WHERE new_state IS NOT NULL
          -- closed or filtered and never seen open: not inventory, still closed: nothing to do
          AND NOT (service_id IS NULL AND new_state <> {PortState.OPEN})
          -- still closed, or no answer where a closed port answered: nothing new (see scans.ingest.diff)
          AND NOT (service_id IS NOT NULL AND old_state = {PortState.CLOSED} AND new_state <> {PortState.OPEN})
    ) o
)
SELECT m.host_id, m.protocol, m.port, m.service_id, m.new_state, m.old_state,
       m.old_name, m.old_product, m.old_version,
       m.new_name, m.new_product, m.new_version, m.new_extrainfo, m.new_identified,
       COALESCE(m.seen_scripts, m.old_scripts, '{{}}'::jsonb) AS new_scripts,
       -- a new port, or another name (maybe another risk): the policy decides
       -- before the row is written (see apply.decide_staged), except on a new host,
       -- whose tags (which rules may name) come after it is written
       (m.service_id IS NULL OR m.old_name IS DISTINCT FROM m.new_name) AND NOT m.new_host AS decide,
       NULL::bigint AS policy_rule_id, NULL::varchar(16) AS policy_status, NULL::smallint AS risk,
       CASE
           -- open before it was filtered: not a new port
           WHEN m.new_state = {PortState.OPEN} AND m.old_state = {PortState.FILTERED} THEN {ChangeKind.PORT_RETURNED}
           WHEN m.new_state = {PortState.OPEN} AND (m.old_state IS NULL OR m.old_state <> {PortState.OPEN})
                THEN {ChangeKind.PORT_OPENED}
           WHEN m.new_state = {PortState.OPEN} AND m.old_identified AND m.new_identified
                AND (m.old_name, m.old_product, m.old_version)
                    IS DISTINCT FROM (m.new_name, m.new_product, m.new_version) THEN {ChangeKind.SERVICE_CHANGED}
           WHEN m.new_state <> {PortState.OPEN} AND m.old_state = {PortState.OPEN}
                THEN CASE WHEN m.new_state = {PortState.CLOSED} THEN {ChangeKind.PORT_CLOSED}
                          ELSE {ChangeKind.PORT_FILTERED} END
       END AS kind
FROM merged m
WHERE m.service_id IS NULL
   OR m.new_state <> m.old_state
   OR m.old_stale
   OR (m.listed AND m.timed_out)  -- a timed-out host derives no "last seen": write it
   OR (m.new_name, m.new_product, m.new_version, m.new_extrainfo, m.new_identified)
      IS DISTINCT FROM (m.old_name, m.old_product, m.old_version, m.old_extrainfo, m.old_identified)
   OR (m.seen_scripts IS NOT NULL AND m.seen_scripts IS DISTINCT FROM m.old_scripts);

-- A port that keeps toggling is flapping: count its recent state changes.
CREATE TEMP TABLE pw_flap ON COMMIT DROP AS
SELECT u.host_id, u.protocol, u.port, count(c.id) + 1 >= %(flap_threshold)s AS flapping
FROM {StagedPort} u
LEFT JOIN {Change} c ON c.host_id = u.host_id AND c.protocol = u.protocol AND c.port = u.port
     AND c.kind IN {STATE_CHANGE_KINDS} AND c.created_at > %(flap_since)s
WHERE u.kind IN {STATE_CHANGE_KINDS}
GROUP BY u.host_id, u.protocol, u.port;
""",
)

# After PORTS and apply.decide_staged: the writes.
PORT_WRITES = sql(
    "port_writes",
    """
INSERT INTO {Change}
    (public_id, run_id, vantage_id, chunk_id, host_id, kind, protocol, port, before, after, flapping, created_at)
SELECT gen_random_uuid(), %(run)s, %(vantage)s, %(chunk)s, u.host_id, u.kind, u.protocol, u.port,
       CASE WHEN u.service_id IS NULL THEN NULL ELSE jsonb_build_object(
           'state', u.old_state, 'name', u.old_name, 'product', u.old_product, 'version', u.old_version) END,
       jsonb_build_object('state', u.new_state, 'name', u.new_name, 'product', u.new_product, 'version', u.new_version),
       COALESCE(f.flapping, FALSE), %(now)s
FROM {StagedPort} u LEFT JOIN pw_flap f USING (host_id, protocol, port)
WHERE u.kind IS NOT NULL;

INSERT INTO {Service} (host_id, protocol, port, state, name, product, version, extrainfo, identified,
                               scripts, stale, flapping, first_seen, last_seen, last_changed,
                               policy_rule_id, policy_status, risk)
SELECT u.host_id, u.protocol, u.port, u.new_state, COALESCE(u.new_name, ''), COALESCE(u.new_product, ''),
       COALESCE(u.new_version, ''), COALESCE(u.new_extrainfo, ''), COALESCE(u.new_identified, FALSE),
       u.new_scripts, FALSE, COALESCE(f.flapping, FALSE), %(now)s, %(now)s, %(now)s,
       u.policy_rule_id, u.policy_status, COALESCE(u.risk, %(no_risk)s)
FROM {StagedPort} u LEFT JOIN pw_flap f USING (host_id, protocol, port)
WHERE u.service_id IS NULL;
""",
)

# After PORT_WRITES and apply.keep_statistics.
PORT_UPDATES = sql(
    "port_updates",
    """
UPDATE {Service} s SET
    state = u.new_state, name = u.new_name, product = u.new_product, version = u.new_version,
    extrainfo = u.new_extrainfo, identified = u.new_identified, scripts = u.new_scripts, stale = FALSE,
    -- a closed port was last seen when it was last seen open
    last_seen = CASE WHEN u.new_state <> {PortState.CLOSED} THEN %(now)s ELSE GREATEST(s.last_seen,
        CASE WHEN s.state <> {PortState.CLOSED} AND EXISTS (
            SELECT 1 FROM pw_sets r WHERE r.set_id = p.old_set AND r.protocol = s.protocol
              AND s.port BETWEEN r.lo AND r.hi) THEN p.old_last_seen END) END,
    last_changed = CASE WHEN u.new_state <> u.old_state THEN %(now)s ELSE s.last_changed END,
    flapping = COALESCE(f.flapping, s.flapping),
    -- another service name may be another risk: decided by apply.decide_staged
    policy_rule_id = CASE WHEN u.decide THEN u.policy_rule_id ELSE s.policy_rule_id END,
    policy_status = CASE WHEN u.decide THEN u.policy_status ELSE s.policy_status END,
    risk = CASE WHEN u.decide THEN COALESCE(u.risk, %(no_risk)s) ELSE s.risk END
FROM {StagedPort} u
JOIN pw_h p ON p.host_id = u.host_id
LEFT JOIN pw_flap f ON f.host_id = u.host_id AND f.protocol = u.protocol AND f.port = u.port
WHERE s.id = u.service_id;
""",
)

COUNTS = sql(
    "counts",
    "SELECT kind, count(*) FROM {Change} WHERE chunk_id = %(chunk)s AND id > %(after_change)s GROUP BY kind",
)

# Rows a batch inserted, read by apply.keep_statistics.
NEW_HOSTS = "SELECT count(*) FROM pw_h WHERE is_new"
NEW_SERVICES = sql("new_services", "SELECT count(*) FROM {StagedPort} WHERE service_id IS NULL")
NEW_CHANGES = sql("new_changes", "SELECT count(*) FROM {StagedPort} WHERE kind IS NOT NULL")


def statements(script: str) -> list[str]:
    """Split a script into statements (server-side parameters take one at a time)."""
    parts = [statement.strip() for statement in re.split(r";[ \t]*\n", script) if statement.strip()]
    if any(";" in statement for statement in parts):
        raise ValueError("a statement must end its line with ;")
    return parts


HOST_STATEMENTS = statements(HOSTS)
HOST_WRITE_STATEMENTS = statements(HOST_WRITES)
PORT_STATEMENTS = statements(PORTS)
PORT_WRITE_STATEMENTS = statements(PORT_WRITES)
PORT_UPDATE_STATEMENTS = statements(PORT_UPDATES)
