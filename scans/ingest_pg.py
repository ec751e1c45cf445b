"""The diff engine in set-based SQL, for PostgreSQL.

Same semantics as ``scans.diff`` (the specification, and the engine on
SQLite), written as a handful of statements over staging tables so that a
65,536-host scan is diffed without a round trip per host or port:

1. observations are COPYed into ``pw_obs`` (one row per host, per listed
   port, per summarised port range), with the covered-but-silent addresses,
   the probed port ranges and the re-probe's contradictions beside them;
2. ``pw_h`` joins the observed and silent addresses to the known hosts;
   new hosts are inserted, known ones updated, host-level changes recorded;
3. ``pw_svc`` lines up every port the scan observed (listed, or known and
   covered by a summary within the probed set) with the known service, and
   ``pw_upd`` computes the merged service fields and the change kind;
4. changes are inserted, services inserted and updated.

Large files are parsed by several processes at once and diffed batch by
batch (``stage_file_batches``): child processes write COPY rows to
temporary files while this process, which holds the only connection and the
transaction, diffs the batches already parsed. ``tests/test_diff_properties.py`` checks that
this engine and ``scans.diff`` agree on random scans.
"""

import gc
import hashlib
import json
import logging
import os
import re
import select
import shutil
import signal
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from inventory.choices import NO_RISK
from scans.diff import Coverage
from scans.nmap_xml import (
    ALL_PROTOCOLS,
    HostListedTwice,
    HostObservation,
    NmapRunInfo,
    NmapXmlError,
    fragments,
    listed_twice,
    read_fragment,
    unique_hosts,
)

logger = logging.getLogger(__name__)

COLUMNS = (
    "kind, address, up, timed_out, hostnames, other_state, protocols, ports, states, names, "
    "protocol, port, port_hi, state, name, product, version, extrainfo, identified, scripts, sig"
)
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]").search
# A port that fits in the host row's arrays: no text that would need quoting.
# fullmatch: "$" would also match before a trailing newline ("http\n" is not plain).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+/-]*").fullmatch
_NULLS_H = "\t".join(["\\N"] * 10)
# Niceness of the parser processes (see _parse_fragment_into).
PARSER_NICENESS = 10
# A batch that inserts fewer rows into a table never ANALYZEs it (see keep_statistics).
ANALYZE_MIN_ROWS = 2000


# --- COPY rows ----------------------------------------------------------------------


def _text(value: str) -> str:
    """A value in COPY's text format (backslash, tab and newlines escaped)."""
    if _NEEDS_ESCAPE(value):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _sig(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


# Service names seen so far -> whether they fit in a host row's arrays. nmap
# uses a few hundred names, so each is checked once; the cache is emptied if
# a file makes up more (see _plain_name).
_PLAIN_NAMES: dict[str, bool] = {}
_PLAIN_NAMES_MAX = 4096


def _plain_name(name: str) -> bool:
    plain = bool(_PLAIN_NAME(name)) and name.upper() != "NULL"
    if len(_PLAIN_NAMES) >= _PLAIN_NAMES_MAX:
        _PLAIN_NAMES.clear()
    _PLAIN_NAMES[name] = plain
    return plain


def copy_rows(observation: HostObservation) -> str:
    """The COPY lines of one host (the hot path of a large import).

    One row for the host, carrying its plain ports (a name guessed from the
    port number, nothing else) as arrays, which keeps a 65k-host scan at 65k
    rows; one row per port with more to say (product, version, scripts); one
    per port range of a summary that is not "every other port".

    The host row also carries a signature of everything its port list says
    (None when nmap gave up on the host or summarised its ports in several
    states): see Host.ports_sig.
    """
    address = observation.address
    other_state = "\\N"
    ranges = []
    for protocol, state, ports in observation.other_ports:
        if protocol == ALL_PROTOCOLS:
            other_state = state
        else:
            ranges.extend((protocol, state, low, high) for low, high in ports.ranges)
    protocols, numbers, states, names, rich = [], [], [], [], []
    for protocol, number, state, name, product, version, extrainfo, identified, scripts in observation.ports:
        plain = _PLAIN_NAMES.get(name)
        if plain is None:
            plain = _plain_name(name)
        if identified or product or version or extrainfo or scripts or not plain:
            scripts_json = _text(json.dumps(dict(scripts))) if scripts else "\\N"
            rich.append(
                f"p\t{address}\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t{protocol}\t{number}\t\\N\t"
                f"{state}\t{_text(name)}\t{_text(product)}\t{_text(version)}\t"
                f"{_text(extrainfo)}\t{'t' if identified else 'f'}\t{scripts_json}\t\\N\n"
            )
        else:
            protocols.append(protocol)
            numbers.append(str(number))
            states.append(state)
            names.append(name)
    arrays = f"{{{','.join(protocols)}}}\t{{{','.join(numbers)}}}\t{{{','.join(states)}}}\t{{{','.join(names)}}}"
    rich_text = "".join(rich)
    signed = observation.up and not observation.timed_out and not ranges and len(observation.other_ports) <= 1
    sig = str(_sig(f"{other_state}\t{arrays}\t{rich_text}")) if signed else "\\N"
    hostnames = _text(json.dumps(list(observation.hostnames))) if observation.hostnames else "[]"
    lines = [
        f"h\t{address}\t{'t' if observation.up else 'f'}\t{'t' if observation.timed_out else 'f'}\t{hostnames}\t"
        f"{other_state}\t{arrays}\t{_NULLS_H}\t{sig}\n",
        rich_text,
    ]
    for protocol, state, low, high in ranges:
        lines.append(
            f"o\t{address}\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t{protocol}\t{low}\t{high}\t{state}\t"
            "\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n"
        )
    return "".join(lines)


# --- staging --------------------------------------------------------------------------

_CREATE = """
-- For this transaction only: the planner's cost estimates for these joins are
-- high enough to trigger JIT compilation, which costs more than it saves here,
-- and the sorts of a large scan fit in memory with a little more work_mem.
SET LOCAL jit = off;
SET LOCAL work_mem = '64MB';
DROP TABLE IF EXISTS pw_obs, pw_sets, pw_silent, pw_probed, pw_unconfirmed, pw_h, pw_listed, pw_upd, pw_flap;
CREATE TEMP TABLE pw_obs (
    kind "char", address inet, up boolean, timed_out boolean, hostnames jsonb, other_state text,
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
"""


def create_staging(cursor) -> None:
    """(Re)create the staging tables of one batch."""
    cursor.execute(_CREATE)


def stage_observations(cursor, observations: Iterable[HostObservation]) -> tuple[int, int]:
    """COPY observations into pw_obs; return (hosts seen, hosts up).

    A host listed twice raises HostListedTwice: the caller merges (scans.merge)
    and stages again.
    """
    seen = up = 0
    with cursor.cursor.copy(f"COPY pw_obs ({COLUMNS}) FROM STDIN") as copy:
        for observation in unique_hosts(observations):
            seen += 1
            up += observation.up
            copy.write(copy_rows(observation))
    return seen, up


@dataclass
class Batch:
    seen: int
    up: int


def stage_file_batches(cursor, path: str, info: NmapRunInfo, parts: int | None = None) -> Iterator[Batch]:
    """Parse ``path`` and stage it batch by batch, for the caller to diff each.

    A large file is cut into fragments parsed by child processes (one per
    CPU at a time) into temporary files; while the caller diffs one batch in
    PostgreSQL, the next fragments are being parsed, so the CPUs stay busy.
    ``info`` receives the run information; completeness is checked at the end
    (NmapXmlError if the file is truncated or reports an error): the caller's
    transaction then rolls every batch back. An address listed twice, in one
    fragment or two, raises HostListedTwice as soon as it is seen: the caller
    rolls back what was staged and reads the file again, merging
    (scans.imports), so ordinary files pay nothing for the possibility.
    """
    if parts is None:
        big = os.path.getsize(path) >= settings.INGEST_PARALLEL_MIN_BYTES
        parts = 2 * max(1, min(os.cpu_count() or 1, 8)) if big else 1
    pieces = fragments(path, parts)
    logger.debug("%s: %d fragment(s)", path, len(pieces))
    if len(pieces) == 1:
        create_staging(cursor)
        yield Batch(*stage_observations(cursor, read_fragment(path, pieces[0], info)))
    else:
        yield from _parallel_batches(cursor, path, pieces, info)
    info.check_complete()


def _parallel_batches(cursor, path: str, pieces: list, info: NmapRunInfo) -> Iterator[Batch]:
    running = max(1, min(os.cpu_count() or 1, len(pieces)))
    workdir = tempfile.mkdtemp(prefix="portwatch-ingest-")
    # index -> (pid, data path, result pipe), for the children started and not yet reaped
    children: dict[int, tuple[int, str, int]] = {}
    payloads: dict[int, dict] = {}  # what finished children reported, by index
    # Each fragment's parser stops at a host listed twice in it; across
    # fragments, the addresses each parser lists are compared here.
    seen: set[str] = set()
    started = 0

    def start_next() -> None:
        nonlocal started
        index, started = started, started + 1
        data_path = os.path.join(workdir, f"{index}.copy")
        result_read, result_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the parser process: never touches the database
            os.close(result_read)
            _parse_fragment_into(path, pieces[index], data_path, result_write)
        os.close(result_write)
        children[index] = (pid, data_path, result_read)

    def collect(timeout: float | None) -> None:
        """Reap the children that have finished (waiting up to ``timeout``), starting one in each one's place.

        A child writes its report and exits, so a readable pipe means it is done. Starting
        the next fragment as soon as any child finishes, not when its batch's turn comes,
        keeps both CPUs parsing while this process waits.
        """
        by_fd = {fd: index for index, (_, _, fd) in children.items()}
        ready, _, _ = select.select(list(by_fd), [], [], timeout)
        for fd in ready:
            index = by_fd[fd]
            pid, _, _ = children.pop(index)
            with os.fdopen(fd, "rb") as result:
                report = result.read()
            os.waitpid(pid, 0)
            payloads[index] = json.loads(report or b'{"error": "the parser process died"}')
            if started < len(pieces):
                start_next()

    try:
        while started < running:
            start_next()
        for index in range(len(pieces)):
            collect(0)  # those that finished while the previous batch was diffed
            while index not in payloads:
                collect(None)
            payload = payloads.pop(index)
            if "listed_twice" in payload:
                raise HostListedTwice(payload["listed_twice"])
            if "error" in payload:
                raise NmapXmlError(payload["error"])
            info.merge(_info_from(payload["info"]))
            data_path = os.path.join(workdir, f"{index}.copy")
            with open(data_path + ".hosts") as hosts:
                addresses = hosts.read().split()
            if not seen.isdisjoint(addresses):
                raise listed_twice(next(address for address in addresses if address in seen))
            seen.update(addresses)
            create_staging(cursor)
            with cursor.cursor.copy(f"COPY pw_obs ({COLUMNS}) FROM STDIN") as copy, open(data_path, "rb") as data:
                while block := data.read(1 << 20):
                    copy.write(block)
            os.unlink(data_path)
            yield Batch(payload["seen"], payload["up"])
    finally:
        for pid, _, result_read in children.values():  # only children not reaped yet
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            os.close(result_read)
        shutil.rmtree(workdir, ignore_errors=True)


def _parse_fragment_into(path: str, piece, data_path: str, result_fd: int) -> None:
    """Child process: parse one fragment into a file of COPY lines, then report."""
    status = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        # The database's work on the batches already parsed is what the
        # ingest waits for; parsers that yield the CPU to it (and to anything
        # else on the machine) keep it busy without slowing it down.
        os.nice(PARSER_NICENESS)
        # A short-lived process that makes no reference cycles worth finding:
        # the cyclic collector would only slow the parse down (by about 8%).
        gc.disable()
        info = NmapRunInfo()
        addresses = []
        up = 0
        with open(data_path, "wb", buffering=1 << 20) as out:
            for observation in read_fragment(path, piece, info):
                addresses.append(observation.address)
                up += observation.up
                out.write(copy_rows(observation).encode())
        with open(data_path + ".hosts", "w") as hosts:
            hosts.write("\n".join(addresses))
        result = {"seen": len(addresses), "up": up, "info": _info_to(info)}
    except HostListedTwice as error:
        result = {"listed_twice": error.address}
    except NmapXmlError as error:
        result = {"error": str(error)}
    except BaseException:
        result = {"error": "The parser failed: " + traceback.format_exc(limit=3)}
        status = 1
    with os.fdopen(result_fd, "wb") as out:
        out.write(json.dumps(result).encode())
    os._exit(status)


def _info_to(info: NmapRunInfo) -> dict:
    return {
        "probed": {protocol: str(ports) for protocol, ports in info.probed.items()},
        "runstats_seen": info.runstats_seen,
        "finished": info.finished.isoformat() if info.finished else None,
        "exit_status": info.exit_status,
        "error_message": info.error_message,
        "hosts_up": info.hosts_up,
        "hosts_down": info.hosts_down,
    }


def _info_from(data: dict) -> NmapRunInfo:
    from inventory.ports import PortSet  # noqa: PLC0415 - only needed here

    return NmapRunInfo(
        probed={protocol: PortSet.from_nmap(ports) for protocol, ports in data["probed"].items()},
        runstats_seen=data["runstats_seen"],
        finished=datetime.fromisoformat(data["finished"]) if data["finished"] else None,
        exit_status=data["exit_status"],
        error_message=data["error_message"],
        hosts_up=data["hosts_up"],
        hosts_down=data["hosts_down"],
    )


def stage_coverage(cursor, coverage: Coverage) -> None:
    """COPY what the scan covered: silent addresses, probed ranges, contradictions."""
    with cursor.cursor.copy("COPY pw_probed (protocol, lo, hi) FROM STDIN") as copy:
        for protocol, ports in coverage.probed.items():
            for low, high in ports.ranges:
                copy.write_row((protocol, low, high))
    with cursor.cursor.copy("COPY pw_unconfirmed (address, protocol, port) FROM STDIN") as copy:
        for key in coverage.unconfirmed:
            copy.write_row(key)


def stage_silent(cursor, addresses: Iterable[str]) -> None:
    with cursor.cursor.copy("COPY pw_silent (address) FROM STDIN") as copy:
        for address in addresses:
            copy.write_row((address,))


# --- the diff ---------------------------------------------------------------------------

_HOSTS = """
ANALYZE pw_obs (kind, address);
CREATE TEMP TABLE pw_h ON COMMIT DROP AS
WITH candidates AS (
    SELECT address, up, timed_out, hostnames, other_state, sig FROM pw_obs WHERE kind = 'h'
    UNION ALL
    SELECT s.address, FALSE, FALSE, NULL, NULL, NULL FROM pw_silent s
    WHERE NOT EXISTS (SELECT 1 FROM pw_obs o WHERE o.kind = 'h' AND o.address = s.address)
)
SELECT c.address, c.up, c.timed_out, c.hostnames, c.other_state,
       h.id AS host_id, h.status AS old_status, h.id IS NULL AS is_new,
       h.last_seen AS old_last_seen, h.seen_ports_id AS old_set,
       -- what this scan probed on the host, if it can vouch for it
       CASE WHEN c.up AND NOT c.timed_out THEN %(probed_set)s::bigint END AS new_set,
       -- the signature to keep: only if applying this scan leaves nothing pending
       CASE WHEN NOT %(any_unconfirmed)s THEN c.sig END AS sig,
       -- the same port list as last time, under the same coverage: nothing can change
       COALESCE(c.up AND h.status = 'up' AND c.sig = h.ports_sig AND h.seen_ports_id = %(probed_set)s::bigint
                AND NOT %(any_unconfirmed)s, FALSE) AS unchanged
FROM candidates c
LEFT JOIN inventory_host h ON h.zone_id = %(zone)s AND h.address = c.address
WHERE (h.id IS NOT NULL OR c.up)
  -- older observations never override newer ones (an old file imported late)
  AND (%(observed_at)s::timestamptz IS NULL OR h.id IS NULL OR h.last_scanned <= %(observed_at)s::timestamptz);

WITH inserted AS (
    INSERT INTO inventory_host (public_id, zone_id, address, hostnames, status, owner, first_seen, last_seen,
                                last_scanned, seen_ports_id, ports_sig)
    SELECT gen_random_uuid(), %(zone)s, address, COALESCE(hostnames, '[]'::jsonb), 'up', '', %(now)s, %(now)s,
           %(now)s, new_set, sig
    FROM pw_h WHERE is_new
    RETURNING id, address
)
UPDATE pw_h SET host_id = inserted.id FROM inserted WHERE pw_h.address = inserted.address;

ANALYZE pw_h;
"""

# After _HOSTS: the old coverage sets of the hosts are loaded into pw_sets.
_HOST_WRITES = """
-- A host whose coverage changes keeps, for each port, the "last seen" its
-- old coverage gave it (see inventory.models.Service.seen_at).
UPDATE inventory_service s SET last_seen = p.old_last_seen
FROM pw_h p
WHERE s.host_id = p.host_id AND p.up AND NOT p.is_new AND p.old_set IS DISTINCT FROM p.new_set
  AND s.state <> 'closed' AND s.last_seen < p.old_last_seen
  AND EXISTS (SELECT 1 FROM pw_sets r
              WHERE r.set_id = p.old_set AND r.protocol = s.protocol AND s.port BETWEEN r.lo AND r.hi);

UPDATE inventory_host h SET
    status = CASE WHEN p.up THEN 'up' ELSE 'unreachable' END,
    last_scanned = %(now)s,
    last_seen = CASE WHEN p.up THEN %(now)s ELSE h.last_seen END,
    seen_ports_id = CASE WHEN p.up THEN p.new_set ELSE h.seen_ports_id END,
    ports_sig = CASE WHEN p.up THEN p.sig ELSE h.ports_sig END,
    hostnames = CASE WHEN p.up AND p.hostnames IS NOT NULL AND p.hostnames <> '[]'::jsonb
                     THEN p.hostnames ELSE h.hostnames END
FROM pw_h p WHERE h.id = p.host_id AND NOT p.is_new;

-- A silent host's ports are kept as last seen, marked stale.
UPDATE inventory_service s SET stale = TRUE FROM pw_h p
WHERE s.host_id = p.host_id AND NOT p.up AND s.state <> 'closed' AND NOT s.stale;

INSERT INTO scans_change
    (public_id, run_id, chunk_id, host_id, kind, protocol, port, before, after, flapping, created_at)
SELECT gen_random_uuid(), %(run)s, %(chunk)s, host_id, kind, '', NULL, before, after, FALSE, %(now)s FROM (
    SELECT host_id, 'host_discovered' AS kind, NULL::jsonb AS before,
           jsonb_build_object('status', 'up', 'hostnames', COALESCE(hostnames, '[]'::jsonb)) AS after
    FROM pw_h WHERE is_new
    UNION ALL
    SELECT host_id, 'host_returned', '{"status": "unreachable"}', '{"status": "up"}'
    FROM pw_h WHERE NOT is_new AND up AND old_status = 'unreachable'
    UNION ALL
    SELECT host_id, 'host_unreachable', '{"status": "up"}', '{"status": "unreachable"}'
    FROM pw_h WHERE NOT is_new AND NOT up AND old_status = 'up'
) host_changes;
"""

_PORTS = """
-- Every port nmap listed on a host that answered: the plain ones from the
-- host rows' arrays, the others from their own rows.
CREATE TEMP TABLE pw_listed ON COMMIT DROP AS
SELECT h.host_id, h.is_new, h.address, h.timed_out, x.protocol, x.port, x.state, x.name,
       '' AS product, '' AS version, '' AS extrainfo, FALSE AS identified, NULL::jsonb AS scripts
FROM pw_obs o JOIN pw_h h ON h.address = o.address AND h.up AND NOT h.unchanged
CROSS JOIN LATERAL unnest(o.protocols::text[], o.ports::integer[], o.states::text[], o.names::text[])
    AS x(protocol, port, state, name)
WHERE o.kind = 'h'
UNION ALL
SELECT h.host_id, h.is_new, h.address, h.timed_out, o.protocol, o.port, o.state, o.name,
       o.product, o.version, o.extrainfo, o.identified, o.scripts
FROM pw_obs o JOIN pw_h h ON h.address = o.address AND h.up AND NOT h.unchanged
WHERE o.kind = 'p';

-- Listed ports against the known ports of the hosts that answered. A row is
-- kept only when something must be written: a change, a new port, merged
-- service fields, a stale mark to clear. A port seen again unchanged is not
-- rewritten: its "last seen" follows its host's.
CREATE TEMP TABLE pw_upd ON COMMIT DROP AS
WITH known AS (
    SELECT s.id, s.host_id, s.protocol, s.port, s.state, s.name, s.product, s.version, s.extrainfo,
           s.identified, s.scripts, s.stale, h.address, h.timed_out, h.other_state
    FROM inventory_service s JOIN pw_h h ON h.host_id = s.host_id AND h.up AND NOT h.is_new AND NOT h.unchanged
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
                   CASE WHEN l.timed_out AND l.state <> 'open' THEN NULL ELSE l.state END
               WHEN k.timed_out THEN NULL
               -- a known port nmap did not list: the state of its summary, within the probed set
               WHEN NOT EXISTS (SELECT 1 FROM pw_probed r
                                WHERE r.protocol = k.protocol AND k.port BETWEEN r.lo AND r.hi) THEN NULL
               ELSE COALESCE(k.other_state, (
                   SELECT x.state FROM pw_obs x
                   WHERE x.kind = 'o' AND x.address = k.address AND x.protocol = k.protocol
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
           CASE WHEN o.scripts <> '{}'::jsonb THEN o.scripts END AS seen_scripts
    FROM (
        SELECT observed.*,
               service_id IS NOT NULL AND (NOT listed OR (old_identified AND NOT identified)) AS keep
        FROM observed
        WHERE new_state IS NOT NULL
          -- closed or filtered and never seen open: not inventory, still closed: nothing to do
          AND NOT (service_id IS NULL AND new_state <> 'open')
          -- still closed, or no answer where a closed port answered: nothing new (see scans.diff)
          AND NOT (service_id IS NOT NULL AND old_state = 'closed' AND new_state <> 'open')
    ) o
)
SELECT m.host_id, m.protocol, m.port, m.service_id, m.new_state, m.old_state,
       m.old_name, m.old_product, m.old_version,
       m.new_name, m.new_product, m.new_version, m.new_extrainfo, m.new_identified,
       COALESCE(m.seen_scripts, m.old_scripts, '{}'::jsonb) AS new_scripts,
       -- a new port, or another name (maybe another risk): the policy decides
       -- before the row is written (see decide_staged), except on a new host,
       -- whose tags (which rules may name) come after it is written
       (m.service_id IS NULL OR m.old_name IS DISTINCT FROM m.new_name) AND NOT m.new_host AS decide,
       NULL::bigint AS policy_rule_id, NULL::varchar(16) AS policy_status, NULL::smallint AS risk,
       CASE
           -- open before it was filtered: not a new port
           WHEN m.new_state = 'open' AND m.old_state = 'filtered' THEN 'port_returned'
           WHEN m.new_state = 'open' AND (m.old_state IS NULL OR m.old_state <> 'open') THEN 'port_opened'
           WHEN m.new_state = 'open' AND m.old_identified AND m.new_identified
                AND (m.old_name, m.old_product, m.old_version)
                    IS DISTINCT FROM (m.new_name, m.new_product, m.new_version) THEN 'service_changed'
           WHEN m.new_state <> 'open' AND m.old_state = 'open'
                THEN CASE WHEN m.new_state = 'closed' THEN 'port_closed' ELSE 'port_filtered' END
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
FROM pw_upd u
LEFT JOIN scans_change c ON c.host_id = u.host_id AND c.protocol = u.protocol AND c.port = u.port
     AND c.kind IN ('port_opened', 'port_closed', 'port_filtered', 'port_returned') AND c.created_at > %(flap_since)s
WHERE u.kind IN ('port_opened', 'port_closed', 'port_filtered', 'port_returned')
GROUP BY u.host_id, u.protocol, u.port;
"""

# After _PORTS and decide_staged: the writes.
_PORT_WRITES = """
INSERT INTO scans_change
    (public_id, run_id, chunk_id, host_id, kind, protocol, port, before, after, flapping, created_at)
SELECT gen_random_uuid(), %(run)s, %(chunk)s, u.host_id, u.kind, u.protocol, u.port,
       CASE WHEN u.service_id IS NULL THEN NULL ELSE jsonb_build_object(
           'state', u.old_state, 'name', u.old_name, 'product', u.old_product, 'version', u.old_version) END,
       jsonb_build_object('state', u.new_state, 'name', u.new_name, 'product', u.new_product, 'version', u.new_version),
       COALESCE(f.flapping, FALSE), %(now)s
FROM pw_upd u LEFT JOIN pw_flap f USING (host_id, protocol, port)
WHERE u.kind IS NOT NULL;

INSERT INTO inventory_service (host_id, protocol, port, state, name, product, version, extrainfo, identified,
                               scripts, stale, flapping, first_seen, last_seen, last_changed,
                               policy_rule_id, policy_status, risk)
SELECT u.host_id, u.protocol, u.port, u.new_state, COALESCE(u.new_name, ''), COALESCE(u.new_product, ''),
       COALESCE(u.new_version, ''), COALESCE(u.new_extrainfo, ''), COALESCE(u.new_identified, FALSE),
       u.new_scripts, FALSE, COALESCE(f.flapping, FALSE), %(now)s, %(now)s, %(now)s,
       u.policy_rule_id, u.policy_status, COALESCE(u.risk, %(no_risk)s)
FROM pw_upd u LEFT JOIN pw_flap f USING (host_id, protocol, port)
WHERE u.service_id IS NULL;
"""

# After _PORT_WRITES and keep_statistics.
_PORT_UPDATES = """
UPDATE inventory_service s SET
    state = u.new_state, name = u.new_name, product = u.new_product, version = u.new_version,
    extrainfo = u.new_extrainfo, identified = u.new_identified, scripts = u.new_scripts, stale = FALSE,
    -- a closed port was last seen when it was last seen open
    last_seen = CASE WHEN u.new_state <> 'closed' THEN %(now)s ELSE GREATEST(s.last_seen,
        CASE WHEN s.state <> 'closed' AND EXISTS (
            SELECT 1 FROM pw_sets r WHERE r.set_id = p.old_set AND r.protocol = s.protocol
              AND s.port BETWEEN r.lo AND r.hi) THEN p.old_last_seen END) END,
    last_changed = CASE WHEN u.new_state <> u.old_state THEN %(now)s ELSE s.last_changed END,
    flapping = COALESCE(f.flapping, s.flapping),
    -- another service name may be another risk: decided by decide_staged
    policy_rule_id = CASE WHEN u.decide THEN u.policy_rule_id ELSE s.policy_rule_id END,
    policy_status = CASE WHEN u.decide THEN u.policy_status ELSE s.policy_status END,
    risk = CASE WHEN u.decide THEN COALESCE(u.risk, %(no_risk)s) ELSE s.risk END
FROM pw_upd u
JOIN pw_h p ON p.host_id = u.host_id
LEFT JOIN pw_flap f ON f.host_id = u.host_id AND f.protocol = u.protocol AND f.port = u.port
WHERE s.id = u.service_id;
"""

_COUNTS = "SELECT kind, count(*) FROM scans_change WHERE chunk_id = %(chunk)s GROUP BY kind"


def apply_staged(
    cursor,
    *,
    run_id: int,
    chunk_id: int,
    zone_id: int,
    now: datetime,
    probed_set_id,
    observed_at=None,
    any_unconfirmed: bool = False,
    keep_stats: bool = False,
) -> Counter:
    """Run the diff over the staged observations; return the change counts by kind.

    ``keep_stats``: one batch of several in a long transaction (a file
    import), see keep_statistics. A scan's chunk is short and analyzes once,
    at its end (scans.ingest._refresh_statistics).
    """
    params = {
        "zone": zone_id,
        "run": run_id,
        "chunk": chunk_id,
        "now": now,
        "observed_at": observed_at,
        "probed_set": probed_set_id,
        "any_unconfirmed": any_unconfirmed,
        "flap_threshold": settings.FLAP_THRESHOLD,
        "flap_since": now - timedelta(minutes=settings.FLAP_WINDOW_MINUTES),
        "no_risk": NO_RISK,
    }
    _run(cursor, _HOST_STATEMENTS, params)
    if keep_stats:
        keep_statistics(cursor, "inventory_host", "SELECT count(*) FROM pw_h WHERE is_new")
    _stage_old_sets(cursor)
    _run(cursor, _HOST_WRITE_STATEMENTS, params)
    _run(cursor, _PORT_STATEMENTS, params)
    decide_staged()
    _run(cursor, _PORT_WRITE_STATEMENTS, params)
    if keep_stats:
        keep_statistics(cursor, "inventory_service", "SELECT count(*) FROM pw_upd WHERE service_id IS NULL")
        keep_statistics(cursor, "scans_change", "SELECT count(*) FROM pw_upd WHERE kind IS NOT NULL")
    _run(cursor, _PORT_UPDATE_STATEMENTS, params)
    cursor.execute(_COUNTS, params)
    return Counter(dict(cursor.fetchall()))


def keep_statistics(cursor, table: str, inserted_sql: str) -> None:
    """ANALYZE ``table`` when this batch inserted a large part of it (a first scan, say).

    Statistics that call a table nearly empty when this transaction has just
    filled it lead the planner to nested loops over it: a join that takes
    milliseconds takes hours. That happens on its own when autovacuum
    analyzes the table during a long first import (it cannot see the
    transaction's rows, so it records an empty table). ANALYZE in the
    transaction counts its own rows, and its lock, held until commit, keeps
    autovacuum from analyzing the table again until then. Checked after the
    batch's inserts, before the statements that join the table.
    """
    cursor.execute(inserted_sql)
    (inserted,) = cursor.fetchone()
    if inserted < ANALYZE_MIN_ROWS:
        return
    cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
    (known,) = cursor.fetchone()
    if known < 4 * inserted:
        _run(cursor, [f"ANALYZE {table}"], {})


def decide_staged() -> None:
    """Let the policy decide rule, status and risk of the ports about to be inserted or renamed.

    The same expressions as ``inventory.policy.evaluate``, on the staged rows:
    inserting a port with its decision costs one write, where inserting it
    undecided and evaluating it would write it twice (with every index of
    inventory_service updated twice). Ports of new hosts are left undecided
    (NULL status) for ``scans.ingest._settle``, which first gives the hosts
    their tags.
    """
    from inventory import policy  # noqa: PLC0415 - models import this module's callers
    from scans.models import StagedPort  # noqa: PLC0415

    start = time.perf_counter()
    StagedPort.objects.filter(decide=True).update(**policy.decision(timezone.now()))
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%7.1f ms  policy of the staged ports", (time.perf_counter() - start) * 1000)


def renamed_hosts():
    """Hosts of the batch whose ports changed name without a recorded change (their risk may differ).

    A subquery over the staged batch, not a list of ids: a large batch can
    name more hosts than a statement takes parameters. Read it before the
    next batch is staged.
    """
    from scans.models import StagedPort  # noqa: PLC0415 - models import this module's callers

    return StagedPort.objects.filter(decide=True, service_id__isnull=False, kind__isnull=True).values("host_id")


def _run(cursor, statements: list[str], params: dict) -> None:
    timed = logger.isEnabledFor(logging.DEBUG)
    for statement in statements:
        start = time.perf_counter()
        cursor.execute(statement, params if "%(" in statement else None)
        if timed:  # `make bench-ingest BENCH_ARGS=--profile` shows where the time goes
            logger.debug("%7.1f ms  %s", (time.perf_counter() - start) * 1000, " ".join(statement.split())[:100])


def _stage_old_sets(cursor) -> None:
    """The port ranges of every coverage set the known hosts point at."""
    from inventory.models import ProbedPortSet  # noqa: PLC0415 - models import this module's callers
    from inventory.ports import PortSet  # noqa: PLC0415

    cursor.execute("SELECT DISTINCT old_set FROM pw_h WHERE old_set IS NOT NULL")
    ids = [row[0] for row in cursor.fetchall()]
    sets = list(ProbedPortSet.objects.filter(pk__in=ids))  # read before COPY holds the connection
    with cursor.cursor.copy("COPY pw_sets (set_id, protocol, lo, hi) FROM STDIN") as copy:
        for probed in sets:
            for protocol, text in probed.ports.items():
                for low, high in PortSet.from_nmap(text).ranges:
                    copy.write_row((probed.pk, protocol, low, high))


def check_deferred(cursor) -> None:
    """Run the foreign-key checks queued so far, instead of all at commit.

    Django's foreign keys are deferred to the end of the transaction; a large
    ingest queues one check per inserted change and port (three per change),
    which at commit would run on one CPU after everything else. Checked batch
    by batch, they overlap with the parsing of the next batches. A violation
    raises here instead of at commit, in the same transaction.
    """
    _run(cursor, ["SET CONSTRAINTS ALL IMMEDIATE", "SET CONSTRAINTS ALL DEFERRED"], {})


def is_available() -> bool:
    return connection.vendor == "postgresql" and settings.INGEST_SQL_ENGINE


def _statements(sql: str) -> list[str]:
    """Split a script into statements (server-side parameters take one at a time).

    Statements end with ";" at the end of a line; nothing else in the scripts does.
    """
    statements = [statement.strip() for statement in re.split(r";[ \t]*\n", sql) if statement.strip()]
    if any(";" in statement for statement in statements):
        raise ValueError("a statement must end its line with ;")
    return statements


_HOST_STATEMENTS = _statements(_HOSTS)
_HOST_WRITE_STATEMENTS = _statements(_HOST_WRITES)
_PORT_STATEMENTS = _statements(_PORTS)
_PORT_WRITE_STATEMENTS = _statements(_PORT_WRITES)
_PORT_UPDATE_STATEMENTS = _statements(_PORT_UPDATES)
