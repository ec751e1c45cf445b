"""The PostgreSQL engine: observations staged with COPY, diffed and written in set-based SQL.

A 262k-host scan costs a few statements per batch instead of a round trip
per host or port. ``write`` stages what it is given (a scan chunk's hosts, a
file read in this process) as one batch; ``write_file`` has a large file
parsed by several processes (``parallel``) and diffs it fragment by
fragment, each settled by the entry point while the next ones are parsed.
``tests/test_diff_properties.py`` holds this engine to the ORM engine's
results on random scans.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.db import connection

from inventory.models import ProbedPortSet
from scans.ingest.diff import Coverage
from scans.ingest.engine import Destination, Written
from scans.ingest.postgres.apply import apply_staged, check_deferred, renamed_hosts
from scans.ingest.postgres.parallel import stage_file_batches
from scans.ingest.postgres.staging import create_staging, stage_coverage, stage_observations
from scans.models import Change
from scans.nmap_xml import HostObservation, NmapRunInfo


class PostgresEngine:
    def write(self, to: Destination, coverage: Coverage, observations: Iterable[HostObservation]) -> Iterator[Written]:
        with connection.cursor() as cursor:
            create_staging(cursor)
            seen, up = stage_observations(cursor, observations)
            changes = _apply(cursor, to, coverage)
            yield Written(seen, up, changes, renamed_hosts=renamed_hosts())

    def write_file(self, to: Destination, path: str, info: NmapRunInfo, observed_at: datetime) -> Iterator[Written]:
        with connection.cursor() as cursor:
            for batch in stage_file_batches(cursor, path, info):
                # The first batch holds nmap's <scaninfo>: the probed ports are known.
                coverage = Coverage(frozenset(), info.probed, complete=True, observed_at=observed_at)
                last_change = _last_change_id()
                changes = _apply(cursor, to, coverage, keep_stats=True, after_change=last_change)
                yield Written(batch.seen, batch.up, changes, after_change=last_change, renamed_hosts=renamed_hosts())
                # After the entry point settled the batch: its foreign keys too, while the next is parsed.
                check_deferred(cursor)


def _apply(cursor, to: Destination, coverage: Coverage, *, keep_stats=False, after_change=0) -> Counter:
    """Diff the staged batch; return the kinds of the changes it recorded."""
    stage_coverage(cursor, coverage)
    probed_set = ProbedPortSet.for_ports(coverage.probed) if coverage.probed else None
    return apply_staged(
        cursor,
        run_id=to.run.pk,
        vantage_id=to.run.vantage_id,
        chunk_id=to.chunk.pk,
        zone_id=to.zone.pk,
        now=to.now,
        probed_set_id=probed_set.pk if probed_set else None,
        observed_at=coverage.observed_at,
        any_unconfirmed=bool(coverage.unconfirmed),
        keep_stats=keep_stats,
        after_change=after_change,
    )


def _last_change_id() -> int:
    """The newest change id: a batch's own changes come after it (ids only grow)."""
    return Change.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
