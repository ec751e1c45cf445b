"""The triggers that keep the tallies, and the recount that checks them.

From each source's description (``tallies.sources``) come, for each database:

- PostgreSQL: an AFTER ... FOR EACH STATEMENT trigger per event, reading
  the statement's transition tables (REFERENCING OLD TABLE / NEW TABLE):
  one grouped pass over the rows the statement changed, one INSERT of its
  deltas into TallyDelta (a few rows per statement, whatever its size). A
  TRUNCATE empties the table's figures.
- SQLite: AFTER ... FOR EACH ROW triggers that add to Tally directly
  (upserts); an UPDATE only fires when a column a figure reads changed.
- Both: the recount, the same grouping over the whole table (the migration's
  backfill, ``manage.py tallies check``).

Every statement below is built from constants and the choices' values,
never from user input.
"""

from dataclasses import dataclass

from tallies.choices import EXACT, HOUR
from tallies.sources import DELETE, INSERT, SOURCES, UPDATE, Source

__all__ = ["COLUMNS", "SOURCES", "Source", "drop_statements", "install_statements", "recount", "trigger_names"]

# What identifies a count (tallies.models.Count): every statement below writes and groups by these.
COLUMNS = "figure, item, protocol, port, name, grain, bucket"


@dataclass(frozen=True)
class Dialect:
    vendor: str
    epoch: str
    # The hour an instant falls in, in UTC whatever the session's time zone.
    hour: str
    # SQLite's trigger bodies take no WITH clause: the groups are inlined.
    ctes: bool


POSTGRESQL = Dialect(
    "postgresql",
    "TIMESTAMPTZ '1970-01-01 00:00:00+00'",
    "date_trunc('hour', {} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    ctes=True,
)
# Django stores SQLite datetimes as UTC text, "YYYY-MM-DD HH:MM:SS[.ffffff]".
SQLITE = Dialect("sqlite", "'1970-01-01 00:00:00'", "substr({}, 1, 13) || ':00:00'", ctes=False)


def dialect(vendor: str) -> Dialect:
    return POSTGRESQL if vendor == "postgresql" else SQLITE


def deltas(source: Source, rows: str, dialect: Dialect, *, one_row: bool = False) -> str:
    """SELECT figure, item, protocol, port, name, grain, bucket, n: what ``rows`` (the source's
    columns and a sign ``d``) add to the tallies, zero sums left out.

    The rows are grouped first (a statement's thousands of rows fall into a
    few groups), unless there is ``one_row`` (and its old version) to add.
    """
    positions = ", ".join(str(i) for i in range(1, len(source.groups) + 1))
    # Built from SOURCES' constants (see the module's docstring), never from input.
    grouped = f"SELECT {', '.join(source.groups)}, SUM(d) AS d FROM ({rows}) r GROUP BY {positions} HAVING SUM(d) <> 0"  # noqa: S608
    if one_row:
        grouped = f"SELECT {', '.join(source.groups)}, d FROM ({rows}) r"  # noqa: S608
    groups = "g" if dialect.ctes else f"({grouped}) g"
    parts = []
    for add in source.adds:
        timed = [(EXACT, add.at), (HOUR, dialect.hour.format(add.at))] if add.at else []
        buckets = timed or [(EXACT, dialect.epoch)]
        for grain, bucket in buckets:
            parts.append(
                f"SELECT '{add.figure}' AS figure, {add.item} AS item, "  # noqa: S608
                f"{add.protocol} AS protocol, {add.port} AS port, {add.name} AS name, "
                f"{grain} AS grain, {bucket} AS bucket, d FROM {groups} {add.join} WHERE {add.where}"
            )
    union = " UNION ALL ".join(parts)
    select = (
        f"SELECT {COLUMNS}, SUM(d) AS n FROM ({union}) p "  # noqa: S608
        f"WHERE TRUE GROUP BY {COLUMNS} HAVING SUM(d) <> 0"
    )
    return f"WITH g AS ({grouped}) {select}" if dialect.ctes else select


def _rows(source: Source, relation: str, sign: int) -> str:
    return f"SELECT {', '.join(source.columns)}, {sign} AS d FROM {relation}"  # noqa: S608


def recount(source: Source, vendor: str) -> str:
    """The source's tallies counted from the whole table."""
    return deltas(source, _rows(source, source.table, 1), dialect(vendor))


# --- PostgreSQL -------------------------------------------------------------------------

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION tallies_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tallies_tallydelta ({columns}, n) {inserted};
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO tallies_tallydelta ({columns}, n) {deleted};
    ELSE
        -- Planned for each statement (EXECUTE): a plan cached from a one-row
        -- UPDATE joins the two versions by nested loop, quadratic on the next
        -- 100,000-row one (a query without parameters keeps its first plan).
        EXECUTE $update$ INSERT INTO tallies_tallydelta ({columns}, n) {updated} $update$;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION tallies_{name}_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tallies_tally WHERE figure IN ({figures});
    DELETE FROM tallies_tallydelta WHERE figure IN ({figures});
    RETURN NULL;
END $$;
"""

_PG_TRIGGERS = {
    INSERT: "CREATE TRIGGER tallies_{name}_insert AFTER INSERT ON {table} "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tallies_{name}()",
    DELETE: "CREATE TRIGGER tallies_{name}_delete AFTER DELETE ON {table} "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tallies_{name}()",
    UPDATE: "CREATE TRIGGER tallies_{name}_update AFTER UPDATE ON {table} "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tallies_{name}()",
}
_PG_TRUNCATE = (
    "CREATE TRIGGER tallies_{name}_truncate AFTER TRUNCATE ON {table} "
    "FOR EACH STATEMENT EXECUTE FUNCTION tallies_{name}_truncate()"
)


def _changed(source: Source) -> str:
    """An UPDATE's rows whose counted columns changed: the new version (+1) and the old (-1).

    Most UPDATEs touch columns no figure reads (an ingest stamps last_seen
    on every port it saw): joining the two versions by id and keeping the
    rows that differ first makes the grouping that follows as small as the
    change, not the statement (it halved PostgreSQL's CPU in bench-ingest).
    """
    columns = source.columns
    differ = f"({', '.join(f'n.{c}' for c in columns)}) IS DISTINCT FROM ({', '.join(f'o.{c}' for c in columns)})"
    both = f"({', '.join(f'n.{c}' for c in columns)}, 1), ({', '.join(f'o.{c}' for c in columns)}, -1)"
    return (
        f"SELECT v.* FROM new_rows n JOIN old_rows o ON o.id = n.id "  # noqa: S608 - constants only
        f"CROSS JOIN LATERAL (VALUES {both}) AS v({', '.join(columns)}, d) WHERE {differ}"
    )


def _postgresql(source: Source) -> list[str]:
    new, old = _rows(source, "new_rows", 1), _rows(source, "old_rows", -1)
    function = _PG_FUNCTION.format(
        name=source.name,
        inserted=deltas(source, new, POSTGRESQL),
        deleted=deltas(source, old, POSTGRESQL),
        updated=deltas(source, _changed(source), POSTGRESQL),
        figures=", ".join(f"'{figure}'" for figure in source.figures),
        columns=COLUMNS,
    )
    triggers = [_PG_TRIGGERS[event] for event in source.events] + [_PG_TRUNCATE]
    return [function, *(trigger.format(name=source.name, table=source.table) for trigger in triggers)]


# --- SQLite -------------------------------------------------------------------------------

_SQLITE_UPSERT = (
    f"INSERT INTO tallies_tally ({COLUMNS}, n) {{select}} "
    "ON CONFLICT (figure, grain, bucket, item, protocol, port, name) DO UPDATE SET n = n + excluded.n;"
)


def _sqlite(source: Source) -> list[str]:
    def row(alias: str, sign: int) -> str:
        return f"SELECT {', '.join(f'{alias}.{column} AS {column}' for column in source.columns)}, {sign} AS d"

    def upsert(rows: str) -> str:
        return _SQLITE_UPSERT.format(select=deltas(source, rows, SQLITE, one_row=True))

    changed = " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in source.columns)
    triggers = {
        INSERT: f"CREATE TRIGGER tallies_{source.name}_insert AFTER INSERT ON {source.table} "
        f"BEGIN {upsert(row('NEW', 1))} END",
        DELETE: f"CREATE TRIGGER tallies_{source.name}_delete AFTER DELETE ON {source.table} "
        f"BEGIN {upsert(row('OLD', -1))} END",
        UPDATE: f"CREATE TRIGGER tallies_{source.name}_update AFTER UPDATE OF {', '.join(source.columns)} "
        f"ON {source.table} WHEN {changed} "
        f"BEGIN {upsert(row('NEW', 1) + ' UNION ALL ' + row('OLD', -1))} END",
    }
    return [triggers[event] for event in source.events]


# --- installing ------------------------------------------------------------------------------

VIEW = f"""
CREATE VIEW tallies_tallyrow AS
SELECT {COLUMNS}, n FROM tallies_tally
UNION ALL
SELECT {COLUMNS}, n FROM tallies_tallydelta
"""  # noqa: S608 - constants only


def trigger_names(source: Source, vendor: str) -> list[str]:
    events = [*source.events, *(["truncate"] if vendor == "postgresql" else [])]
    return [f"tallies_{source.name}_{event}" for event in events]


def drop_statements(vendor: str) -> list[str]:
    statements = []
    for source in SOURCES:
        for name in trigger_names(source, vendor):
            on = f" ON {source.table}" if vendor == "postgresql" else ""
            statements.append(f"DROP TRIGGER IF EXISTS {name}{on}")
        if vendor == "postgresql":
            statements.append(f"DROP FUNCTION IF EXISTS tallies_{source.name}()")
            statements.append(f"DROP FUNCTION IF EXISTS tallies_{source.name}_truncate()")
    return statements


def install_statements(vendor: str) -> list[str]:
    """Drop and create every trigger (idempotent: a newer description replaces an older one)."""
    statements = drop_statements(vendor)
    for source in SOURCES:
        statements.extend(_postgresql(source) if vendor == "postgresql" else _sqlite(source))
    return statements
