"""Apply: run the diff over a staged batch and write its result, in the transaction.

``apply_staged`` runs ``sql``'s statements in order, with the batch's
parameters, around the two steps that are not plain SQL: the coverage sets
the known hosts point at (``staging.stage_old_sets``) and the policy's
decision on the ports about to be written (``decide_staged``). The rest of
this module keeps a long import fast: statistics that match what the
transaction wrote (``keep_statistics``), foreign-key checks run batch by
batch instead of all at commit (``check_deferred``).
"""

import logging
import time
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from inventory import policy
from inventory.choices import NO_RISK
from inventory.models import Host, Service
from scans.ingest.postgres import sql
from scans.ingest.postgres.staging import stage_old_sets
from scans.models import Change, StagedPort

logger = logging.getLogger(__name__)

# A batch that inserts fewer rows into a table never ANALYZEs it (see keep_statistics).
ANALYZE_MIN_ROWS = 2000


def apply_staged(
    cursor,
    *,
    run_id: int,
    chunk_id: int,
    vantage_id: int | None = None,
    zone_id: int,
    now: datetime,
    probed_set_id,
    observed_at=None,
    any_unconfirmed: bool = False,
    keep_stats: bool = False,
    after_change: int = 0,
) -> Counter:
    """Run the diff over the staged observations; return the kinds of the chunk's changes after ``after_change``.

    ``keep_stats``: one batch of several in a long transaction (a file
    import), see keep_statistics. A scan's chunk is short and analyzes once,
    at its end (``scans.ingest.settle.refresh_statistics``).
    """
    params = {
        "zone": zone_id,
        "run": run_id,
        "vantage": vantage_id,
        "chunk": chunk_id,
        "now": now,
        "observed_at": observed_at,
        "probed_set": probed_set_id,
        "any_unconfirmed": any_unconfirmed,
        "flap_threshold": settings.FLAP_THRESHOLD,
        "flap_since": now - timedelta(minutes=settings.FLAP_WINDOW_MINUTES),
        "no_risk": NO_RISK,
        "after_change": after_change,
    }
    _run(cursor, sql.HOST_STATEMENTS, params)
    if keep_stats:
        keep_statistics(cursor, Host._meta.db_table, sql.NEW_HOSTS)
    stage_old_sets(cursor)
    _run(cursor, sql.HOST_WRITE_STATEMENTS, params)
    _run(cursor, sql.PORT_STATEMENTS, params)
    decide_staged()
    _run(cursor, sql.PORT_WRITE_STATEMENTS, params)
    if keep_stats:
        keep_statistics(cursor, Service._meta.db_table, sql.NEW_SERVICES)
        keep_statistics(cursor, Change._meta.db_table, sql.NEW_CHANGES)
    _run(cursor, sql.PORT_UPDATE_STATEMENTS, params)
    cursor.execute(sql.COUNTS, params)
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

    The same expressions as ``inventory.policy.evaluate``, on the staged rows
    (``StagedPort``): inserting a port with its decision costs one write,
    where inserting it undecided and evaluating it would write it twice (with
    every index of the services' table updated twice). Ports of new hosts are
    left undecided (NULL status) for ``scans.ingest.settle``, which first
    gives the hosts their tags.
    """
    start = time.perf_counter()
    StagedPort.objects.filter(decide=True).update(**policy.decision(timezone.now()))
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%7.1f ms  policy of the staged ports", (time.perf_counter() - start) * 1000)


def renamed_hosts() -> QuerySet:
    """Hosts of the batch whose ports changed name without a recorded change (their risk may differ).

    A subquery over the staged batch, not a list of ids: a large batch can
    name more hosts than a statement takes parameters. Read it before the
    next batch is staged.
    """
    return StagedPort.objects.filter(decide=True, service_id__isnull=False, kind__isnull=True).values("host_id")


def check_deferred(cursor) -> None:
    """Run the foreign-key checks queued so far, instead of all at commit.

    Django's foreign keys are deferred to the end of the transaction; a large
    ingest queues one check per inserted change and port (three per change),
    which at commit would run on one CPU after everything else. Checked batch
    by batch, they overlap with the parsing of the next batches. A violation
    raises here instead of at commit, in the same transaction.
    """
    _run(cursor, ["SET CONSTRAINTS ALL IMMEDIATE", "SET CONSTRAINTS ALL DEFERRED"], {})


def _run(cursor, statements: list[str], params: dict) -> None:
    timed = logger.isEnabledFor(logging.DEBUG)
    for statement in statements:
        start = time.perf_counter()
        cursor.execute(statement, params if "%(" in statement else None)
        if timed:  # `make bench-ingest BENCH_ARGS=--profile` shows where the time goes
            logger.debug("%7.1f ms  %s", (time.perf_counter() - start) * 1000, " ".join(statement.split())[:100])
