"""What the triggers count: one description per source table.

Each ``Source`` names the columns its figures read, how one pass groups the
rows a statement changed (``groups``), and the rows of Tally each group adds
to (``Adds``). ``tallies.triggers`` turns them into triggers and recounts.

Two kinds of sources:

- *Counted* sources: the table's own rows are what is counted (hosts,
  services, changes; ports and violations per vantage point). Their recount
  over the whole table is the figure.
- *Rescoping* sources (``recounted=False``): a host that moves zone or gains
  or loses a tag moves its open ports and violations between the exposure
  matrix's rows. Their triggers join the host's rows in the counted tables,
  as they are at that moment; they count nothing of their own.

Both join other tables as they are when the statement ends. Each statement
changes one table, so adding what it changed, joined with the others as they
are, keeps every join-based figure exact whatever order the statements come
in (a host's deletion removes its ports, tags and views in some order, then
the host: each step subtracts what the join still holds).

Every statement built from here uses constants and the choices' values,
never user input.
"""

from dataclasses import dataclass

from inventory.choices import HostStatus, PolicyStatus, PortState
from tallies.choices import Figure

INSERT, DELETE, UPDATE = "insert", "delete", "update"


@dataclass(frozen=True)
class Adds:
    """Rows of the source's groups that add to ``figure``: those matching
    ``where``, under ``item``, timed by ``at`` (None: an untimed figure).

    ``join`` joins other tables to the group ``g``: each joined row adds the
    group's sign (a host's open ports, say, when the host moves zone).
    """

    figure: str
    where: str = "TRUE"
    item: str = "''"
    at: str | None = None
    join: str = ""
    # The port of a per-port figure (tallies.choices.PER_PORT), and the
    # service's name for open ports; "", 0 and "" for the others.
    protocol: str = "''"
    port: str = "0"
    name: str = "''"


@dataclass(frozen=True)
class Source:
    name: str
    table: str
    columns: tuple[str, ...]
    # One pass over the rows: "expression AS name" for each group column.
    groups: tuple[str, ...]
    adds: tuple[Adds, ...]
    events: tuple[str, ...] = (INSERT, DELETE, UPDATE)
    recounted: bool = True

    @property
    def figures(self) -> list[str]:
        return sorted({add.figure for add in self.adds})


# --- the overview's figures ------------------------------------------------------------------

INVENTORY = [
    Source(
        "host",
        "inventory_host",
        ("zone_id", "status", "last_scanned"),
        (
            "CAST(zone_id AS TEXT) AS zone_item",
            f"status = '{HostStatus.UNREACHABLE}' AS unreachable",
            "last_scanned AS scanned",
        ),
        (
            Adds(Figure.HOSTS, item="zone_item"),
            Adds(Figure.UNREACHABLE, where="unreachable"),
            Adds(Figure.SCANNED, item="zone_item", at="scanned"),
        ),
    ),
    Source(
        "service",
        "inventory_service",
        ("state", "policy_status", "first_seen"),
        (
            f"state = '{PortState.OPEN}' AS is_open",
            "policy_status AS status",
            f"CASE WHEN state = '{PortState.OPEN}' AND policy_status = '{PolicyStatus.UNREVIEWED}' "
            "THEN first_seen END AS waiting",
        ),
        (
            Adds(Figure.OPEN, where="is_open"),
            Adds(Figure.UNREVIEWED, where=f"is_open AND status = '{PolicyStatus.UNREVIEWED}'"),
            Adds(Figure.VIOLATING, where=f"is_open AND status = '{PolicyStatus.REJECTED}'"),
            Adds(Figure.WAITING, where="waiting IS NOT NULL", at="waiting"),
        ),
    ),
    Source(
        "change",
        "scans_change",
        ("kind", "created_at"),
        ("kind", "created_at"),
        (Adds(Figure.CHANGES, item="kind", at="created_at"),),
    ),
    Source(
        "port_finding",
        "listeners_portfinding",
        ("finding", "taken_at"),
        ("finding", "taken_at"),
        (Adds(Figure.FINDINGS, item="finding", at="taken_at"),),
    ),
]


# --- the exposure matrix's figures (reach.matrix) ------------------------------------------------
#
# A cell is a vantage point and a zone or a tag. Items (reach.matrix reads them):
#   z<zone>, z<zone>:t<tag>       open ports of the inventory (its zone's home's view)
#   v<vantage>:z<zone>, v<vantage>:t<tag>   open PortViews (EXPOSED), violations (VIOLATED)
# Per port (EXPOSED_PORT, VIOLATED_PORT: the row's protocol and port), for a matrix narrowed to
# ports, risk or a rule's scope (a zone, or a tag when the rows are zones, or the other way round):
#   z<zone>, z<zone>:t<tag>       open ports of the inventory
#   v<vantage>:z<zone>, v<vantage>:z<zone>:t<tag>   open PortViews
#   r<rule>:v<vantage>:z<zone>, r<rule>:v<vantage>:z<zone>:t<tag>   violations, by the rule broken

_OPEN = f"'{PortState.OPEN}'"
_HOST = "JOIN inventory_host h ON h.id = g.host_id"
_TAGS = "JOIN inventory_hosttag t ON t.host_id = g.host_id"
_SERVICES = f"JOIN inventory_service s ON s.host_id = g.host_id AND s.state = {_OPEN}"
_VIEWS = f"JOIN reach_portview p ON p.host_id = g.host_id AND p.state = {_OPEN}"
_VIOLATIONS = "JOIN reach_segmentationviolation x ON x.host_id = g.host_id"


def _item(*parts: str) -> str:
    """An item built in SQL: ``_item("'z'", "h.zone_id")`` is 'z' || zone_id, as text on both databases."""
    return " || ".join(part if part.startswith("'") else f"CAST({part} AS TEXT)" for part in parts)


def _exposed_port(item: str, join: str, alias: str, where: str = "TRUE") -> Adds:
    """An open port (Service or PortView, aliased ``alias``) under ``item``, per its protocol, port and name."""
    return Adds(
        Figure.EXPOSED_PORT,
        where=where,
        item=item,
        join=join,
        protocol=f"{alias}.protocol",
        port=f"{alias}.port",
        name=f"{alias}.name",
    )


def _violated_port(item: str, join: str, alias: str) -> Adds:
    """A violation (aliased ``alias``) under ``item``, per its protocol and port."""
    return Adds(Figure.VIOLATED_PORT, item=item, join=join, protocol=f"{alias}.protocol", port=f"{alias}.port")


EXPOSURE = [
    Source(
        "service_reach",
        "inventory_service",
        ("host_id", "protocol", "port", "name", "state"),
        ("host_id", "protocol", "port", "name", f"state = {_OPEN} AS is_open"),
        (
            Adds(Figure.EXPOSED, where="g.is_open", item=_item("'z'", "h.zone_id"), join=_HOST),
            Adds(
                Figure.EXPOSED,
                where="g.is_open",
                item=_item("'z'", "h.zone_id", "':t'", "t.tag_id"),
                join=f"{_HOST} {_TAGS}",
            ),
            _exposed_port(_item("'z'", "h.zone_id"), _HOST, "g", where="g.is_open"),
            _exposed_port(_item("'z'", "h.zone_id", "':t'", "t.tag_id"), f"{_HOST} {_TAGS}", "g", where="g.is_open"),
        ),
    ),
    Source(
        "portview",
        "reach_portview",
        ("host_id", "vantage_id", "protocol", "port", "name", "state"),
        ("host_id", "vantage_id", "protocol", "port", "name", f"state = {_OPEN} AS is_open"),
        (
            Adds(Figure.EXPOSED, where="g.is_open", item=_item("'v'", "g.vantage_id", "':z'", "h.zone_id"), join=_HOST),
            Adds(Figure.EXPOSED, where="g.is_open", item=_item("'v'", "g.vantage_id", "':t'", "t.tag_id"), join=_TAGS),
            _exposed_port(_item("'v'", "g.vantage_id", "':z'", "h.zone_id"), _HOST, "g", where="g.is_open"),
            _exposed_port(
                _item("'v'", "g.vantage_id", "':z'", "h.zone_id", "':t'", "t.tag_id"),
                f"{_HOST} {_TAGS}",
                "g",
                where="g.is_open",
            ),
        ),
    ),
    Source(
        "violation",
        "reach_segmentationviolation",
        ("host_id", "vantage_id", "protocol", "port", "rule_id"),
        ("host_id", "vantage_id", "protocol", "port", "rule_id"),
        (
            Adds(Figure.VIOLATED, item=_item("'v'", "g.vantage_id", "':z'", "h.zone_id"), join=_HOST),
            Adds(Figure.VIOLATED, item=_item("'v'", "g.vantage_id", "':t'", "t.tag_id"), join=_TAGS),
            _violated_port(_item("'r'", "g.rule_id", "':v'", "g.vantage_id", "':z'", "h.zone_id"), _HOST, "g"),
            _violated_port(
                _item("'r'", "g.rule_id", "':v'", "g.vantage_id", "':z'", "h.zone_id", "':t'", "t.tag_id"),
                f"{_HOST} {_TAGS}",
                "g",
            ),
        ),
    ),
    # A host moved to another zone (an insert has no ports yet; a delete
    # follows its ports'): its ports and violations move with it.
    Source(
        "host_scope",
        "inventory_host",
        ("id", "zone_id"),
        ("id AS host_id", "zone_id"),
        (
            Adds(Figure.EXPOSED, item=_item("'z'", "g.zone_id"), join=_SERVICES),
            Adds(Figure.EXPOSED, item=_item("'z'", "g.zone_id", "':t'", "t.tag_id"), join=f"{_SERVICES} {_TAGS}"),
            Adds(Figure.EXPOSED, item=_item("'v'", "p.vantage_id", "':z'", "g.zone_id"), join=_VIEWS),
            Adds(Figure.VIOLATED, item=_item("'v'", "x.vantage_id", "':z'", "g.zone_id"), join=_VIOLATIONS),
            _exposed_port(_item("'z'", "g.zone_id"), _SERVICES, "s"),
            _exposed_port(_item("'z'", "g.zone_id", "':t'", "t.tag_id"), f"{_SERVICES} {_TAGS}", "s"),
            _exposed_port(_item("'v'", "p.vantage_id", "':z'", "g.zone_id"), _VIEWS, "p"),
            _exposed_port(
                _item("'v'", "p.vantage_id", "':z'", "g.zone_id", "':t'", "t.tag_id"), f"{_VIEWS} {_TAGS}", "p"
            ),
            _violated_port(_item("'r'", "x.rule_id", "':v'", "x.vantage_id", "':z'", "g.zone_id"), _VIOLATIONS, "x"),
            _violated_port(
                _item("'r'", "x.rule_id", "':v'", "x.vantage_id", "':z'", "g.zone_id", "':t'", "t.tag_id"),
                f"{_VIOLATIONS} {_TAGS}",
                "x",
            ),
        ),
        events=(UPDATE,),
        recounted=False,
    ),
    # A tag given to or taken from a host: its ports and violations join or leave the tag's row.
    Source(
        "host_tag",
        "inventory_hosttag",
        ("host_id", "tag_id"),
        ("host_id", "tag_id"),
        (
            Adds(Figure.EXPOSED, item=_item("'z'", "h.zone_id", "':t'", "g.tag_id"), join=f"{_HOST} {_SERVICES}"),
            Adds(Figure.EXPOSED, item=_item("'v'", "p.vantage_id", "':t'", "g.tag_id"), join=_VIEWS),
            Adds(Figure.VIOLATED, item=_item("'v'", "x.vantage_id", "':t'", "g.tag_id"), join=_VIOLATIONS),
            _exposed_port(_item("'z'", "h.zone_id", "':t'", "g.tag_id"), f"{_HOST} {_SERVICES}", "s"),
            _exposed_port(
                _item("'v'", "p.vantage_id", "':z'", "h.zone_id", "':t'", "g.tag_id"), f"{_HOST} {_VIEWS}", "p"
            ),
            _violated_port(
                _item("'r'", "x.rule_id", "':v'", "x.vantage_id", "':z'", "h.zone_id", "':t'", "g.tag_id"),
                f"{_HOST} {_VIOLATIONS}",
                "x",
            ),
        ),
        recounted=False,
    ),
]

SOURCES = INVENTORY + EXPOSURE
