"""Staging: what one batch of a scan says, COPYed into the temporary tables the SQL diffs.

COPY is the fastest way into PostgreSQL (one stream, no statement per row);
the rows come from ``copy_rows`` (observations), or straight from the
scan's coverage. The tables live for the transaction and are created again
for every batch (``sql.CREATE_STAGING``).
"""

from collections.abc import Iterable

from inventory.models import ProbedPortSet
from inventory.ports import PortSet
from scans.ingest.diff import Coverage
from scans.ingest.postgres import sql
from scans.ingest.postgres.copy_rows import COLUMNS, copy_rows
from scans.nmap_xml import HostObservation, unique_hosts

COPY_OBSERVATIONS = f"COPY pw_obs ({COLUMNS}) FROM STDIN"


def create_staging(cursor) -> None:
    """(Re)create the staging tables of one batch."""
    cursor.execute(sql.CREATE_STAGING)


def stage_observations(cursor, observations: Iterable[HostObservation]) -> tuple[int, int]:
    """COPY observations into pw_obs; return (hosts seen, hosts up).

    A host listed twice raises HostListedTwice: the caller merges (scans.merge)
    and stages again.
    """
    seen = up = 0
    with cursor.cursor.copy(COPY_OBSERVATIONS) as copy:
        for observation in unique_hosts(observations):
            seen += 1
            up += observation.up
            copy.write(copy_rows(observation))
    return seen, up


def stage_coverage(cursor, coverage: Coverage) -> None:
    """COPY what the scan covered: silent addresses, probed ranges, contradictions."""
    with cursor.cursor.copy("COPY pw_probed (protocol, lo, hi) FROM STDIN") as copy:
        for protocol, ports in coverage.probed.items():
            for low, high in ports.ranges:
                copy.write_row((protocol, low, high))
    with cursor.cursor.copy("COPY pw_unconfirmed (address, protocol, port) FROM STDIN") as copy:
        for key in coverage.unconfirmed:
            copy.write_row(key)
    with cursor.cursor.copy("COPY pw_silent (address) FROM STDIN") as copy:
        for address in coverage.addresses:
            copy.write_row((address,))


def stage_old_sets(cursor) -> None:
    """The port ranges of every coverage set the batch's known hosts point at (after sql.HOSTS)."""
    cursor.execute("SELECT DISTINCT old_set FROM pw_h WHERE old_set IS NOT NULL")
    ids = [row[0] for row in cursor.fetchall()]
    sets = list(ProbedPortSet.objects.filter(pk__in=ids))  # read before COPY holds the connection
    with cursor.cursor.copy("COPY pw_sets (set_id, protocol, lo, hi) FROM STDIN") as copy:
        for probed in sets:
            for protocol, text in probed.ports.items():
                for low, high in PortSet.from_nmap(text).ranges:
                    copy.write_row((probed.pk, protocol, low, high))
