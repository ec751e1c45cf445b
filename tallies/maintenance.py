"""Installing the triggers, compacting, recounting and checking the tallies."""

import logging
from collections import Counter
from datetime import UTC, datetime

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tallies import triggers
from tallies.choices import CHANGES_KEPT, Figure
from tallies.models import Tally, TallyRow

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key: "PWtally".
_COMPACT_LOCK = 0x5057_7461_6C6C_79

# Constants only (triggers.COLUMNS).
_FOLD = f"""
WITH moved AS (DELETE FROM tallies_tallydelta RETURNING {triggers.COLUMNS}, n)
INSERT INTO tallies_tally ({triggers.COLUMNS}, n)
SELECT {triggers.COLUMNS}, SUM(n) FROM moved GROUP BY {triggers.COLUMNS}
ON CONFLICT (figure, grain, bucket, item, protocol, port, name) DO UPDATE SET n = tallies_tally.n + excluded.n
"""  # noqa: S608 - constants only


def install(connection) -> None:
    """Create (or replace) the triggers and the readers' view."""
    with connection.cursor() as cursor:
        cursor.execute("DROP VIEW IF EXISTS tallies_tallyrow")
        cursor.execute(triggers.VIEW)
        for statement in triggers.install_statements(connection.vendor):
            cursor.execute(statement)


def uninstall(connection) -> None:
    with connection.cursor() as cursor:
        for statement in triggers.drop_statements(connection.vendor):
            cursor.execute(statement)
        cursor.execute("DROP VIEW IF EXISTS tallies_tallyrow")


def _counted():
    """The sources whose whole table, recounted, gives their figures (not the rescoping ones)."""
    return [source for source in triggers.SOURCES if source.recounted]


def missing_triggers(connection) -> set[str]:
    expected = {name for source in triggers.SOURCES for name in triggers.trigger_names(source, connection.vendor)}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A disabled trigger (ALTER TABLE ... DISABLE TRIGGER) counts as missing.
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgname LIKE %s AND NOT tgisinternal AND tgenabled <> 'D'",
                ["tallies%"],
            )
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return expected - {row[0] for row in cursor.fetchall()}


def _lock_sources(connection) -> None:
    """Keep writers out while counting from scratch (readers go on)."""
    if connection.vendor == "postgresql":
        tables = ", ".join(sorted({source.table for source in triggers.SOURCES}))
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {tables} IN SHARE MODE")


def rebuild(using: str = DEFAULT_DB_ALIAS) -> None:
    """Count every figure again from the inventory and keep that.

    The migration's backfill; also after anything that wrote with the
    triggers off (a restore with triggers disabled, say).
    """
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        _lock_sources(connection)
        cursor.execute("DELETE FROM tallies_tallydelta")
        cursor.execute("DELETE FROM tallies_tally")
        for source in _counted():
            cursor.execute(
                f"INSERT INTO tallies_tally ({triggers.COLUMNS}, n) " + triggers.recount(source, connection.vendor)
            )


def ensure_triggers(sender=None, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    """After migrate: put back triggers a migration dropped, and recount.

    SQLite drops a table's triggers with it, and Django's SQLite schema
    editor rebuilds a table to alter most columns: without this, a later
    migration of hosts, services or changes would silently stop the counts.
    """
    connection = connections[using]
    tables = set(connection.introspection.table_names())
    needed = {"tallies_tally", "tallies_tallydelta"} | {source.table for source in triggers.SOURCES}
    if not needed <= tables or not missing_triggers(connection):
        return
    logger.warning("tallies: triggers missing after migrate; installing them and recounting")
    with transaction.atomic(using=using):
        install(connection)
        rebuild(using)


def compact(now: datetime | None = None) -> int:
    """Fold committed deltas into Tally, drop zero rows and old change buckets.

    Run by beat every minute (``tallies.tasks``); readers are exact without
    it, it only keeps what they read small. Deltas of transactions still
    running are not visible yet, so they wait for the next run. One at a
    time (an advisory lock); returns the rows folded, or -1 when another
    compaction was running.
    """
    now = now or timezone.now()
    connection = connections[DEFAULT_DB_ALIAS]
    folded = 0
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_COMPACT_LOCK])
            if not cursor.fetchone()[0]:
                return -1
            cursor.execute(_FOLD)
            folded = cursor.rowcount
        Tally.objects.filter(n=0).delete()
        Tally.objects.filter(figure=Figure.CHANGES, bucket__lt=now - CHANGES_KEPT).delete()
    return folded


# --- checking ------------------------------------------------------------------------------

# figure, item, protocol, port, name, grain, bucket (triggers.COLUMNS)
Key = tuple[str, str, str, int, str, int, datetime]


def kept() -> dict[Key, int]:
    """Every kept row, deltas summed in, zeros left out."""
    rows = TallyRow.objects.values_list("figure", "item", "protocol", "port", "name", "grain", "bucket").annotate(
        total=Sum("n")
    )
    return {tuple(key): int(n) for *key, n in rows if n}


def recounted(using: str = DEFAULT_DB_ALIAS) -> dict[Key, int]:
    """Every row counted from the inventory."""
    connection = connections[using]
    counts: dict[Key, int] = {}
    with connection.cursor() as cursor:
        for source in _counted():
            cursor.execute(triggers.recount(source, connection.vendor))
            for *key, at, n in cursor.fetchall():
                bucket = parse_datetime(at).replace(tzinfo=UTC) if isinstance(at, str) else at  # SQLite: UTC text
                counts[(*key, bucket)] = int(n)
    return counts


def differences(now: datetime | None = None) -> list[str]:
    """Kept rows that differ from a recount ("" when none). Change buckets
    older than compaction keeps are left out on both sides."""
    horizon = (now or timezone.now()) - CHANGES_KEPT

    def visible(rows: dict[Key, int]) -> Counter:
        return Counter({key: n for key, n in rows.items() if not (key[0] == Figure.CHANGES and key[6] < horizon) and n})

    have, want = visible(kept()), visible(recounted())
    problems = []
    for key in sorted(set(have) | set(want)):
        if have.get(key, 0) != want.get(key, 0):
            figure, item, protocol, port, name, grain, bucket = key
            where = f"{figure}[{item}]" if item else figure
            where += f" {port}/{protocol}" if protocol else ""
            where += f" ({name})" if name else ""
            when = "" if grain == 0 and bucket.year == 1970 else f" {grain}s@{bucket.isoformat()}"
            problems.append(f"{where}{when}: kept {have.get(key, 0)}, counted {want.get(key, 0)}")
    return problems
