"""The exposure matrix: zones or tags by vantage point, what each reaches and what it must not.

A cell is a vantage point and a zone (or a tag): the open ports of that
zone's (tag's) hosts that the vantage point reaches, and the segmentation
violations among them. What a vantage point reaches is its view: a zone's
home sees the inventory (the open Service rows of its zone's hosts), every
other vantage point its own PortView rows. A stale port counts as open,
as segmentation counts it: it was, when last seen.

Unfiltered, the cells are kept counts (``tallies``: the triggers described
in ``tallies.sources`` keep them per vantage point and zone or tag in the
transactions that change ports, views, violations, tags and zones), so the
page reads a few hundred rows whatever the inventory's size. Filtered (by
port, protocol, risk or segmentation rule) they are counted on request,
from the indexes of the rows that match. Both produce the same items, so
``counted(Query())`` equals ``kept()``: the tests hold them to each other.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q

from inventory.choices import PortState
from inventory.models import RiskRule, Service, Tag, Zone
from inventory.ports import PortSet
from reach import segmentation
from reach.models import PortView, SegmentationRule, SegmentationViolation, VantagePoint
from tallies import read
from tallies.choices import Figure

ROWS_ZONE, ROWS_TAG = "zone", "tag"


@dataclass(frozen=True)
class Query:
    """What the matrix (and a cell's list) is narrowed to. Empty: everything, read from the kept counts."""

    rows: str = ROWS_ZONE
    ports: PortSet | None = None
    protocol: str = ""
    # At least this severity in the risk table (inventory.risk).
    risk: int | None = None
    rule: SegmentationRule | None = None

    @property
    def filtered(self) -> bool:
        return self.ports is not None or bool(self.protocol) or self.risk is not None or self.rule is not None


# --- items: the keys the triggers write (tallies.sources) and the counts below use ---------------


def home_item(zone_id: int, tag_id: int | None = None) -> str:
    return f"z{zone_id}" if tag_id is None else f"z{zone_id}:t{tag_id}"


def view_item(vantage_id: int, *, zone_id: int | None = None, tag_id: int | None = None) -> str:
    return f"v{vantage_id}:z{zone_id}" if tag_id is None else f"v{vantage_id}:t{tag_id}"


# --- the cells -------------------------------------------------------------------------------


@dataclass
class Cell:
    vantage: VantagePoint
    exposed: int
    violated: int


@dataclass
class Row:
    kind: str  # ROWS_ZONE or ROWS_TAG
    item: Zone | Tag
    cells: list[Cell] = field(default_factory=list)


@dataclass
class Matrix:
    query: Query
    vantages: list[VantagePoint]
    rows: list[Row]

    def as_numbers(self) -> dict:
        """{(row name, vantage name): (exposed, violated)}: what the tests compare."""
        return {
            (row.item.name, cell.vantage.name): (cell.exposed, cell.violated) for row in self.rows for cell in row.cells
        }


def kept(rows: str = ROWS_ZONE) -> Matrix:
    """Every cell from the kept counts: one read of a few hundred rows."""
    counts = read.read(untimed=[Figure.EXPOSED, Figure.VIOLATED])
    return _assemble(Query(rows=rows), counts[Figure.EXPOSED], counts[Figure.VIOLATED])


def counted(query: Query) -> Matrix:
    """Every cell counted from the rows the query matches (the filters' indexes narrow them)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # As reach.segmentation does: the estimates of a count over a
                # million rows trigger JIT compilation, which took 1.0 of the
                # 1.4 s of the risk filter's violations at 100,000 hosts.
                cursor.execute("SET LOCAL jit = off")
        return _counted(query)


def _counted(query: Query) -> Matrix:
    by = "host__zone_id" if query.rows == ROWS_ZONE else "host__tags"
    exposed: dict[str, int] = defaultdict(int)
    violated: dict[str, int] = defaultdict(int)
    where = port_condition(query)
    services = Service.objects.filter(where, state=PortState.OPEN)
    if query.rows == ROWS_ZONE:
        for row in services.values("host__zone_id").annotate(n=Count("pk")).order_by():
            exposed[home_item(row["host__zone_id"])] += row["n"]
    else:
        # (Hosts without a tag come back once with None: no tag's row.)
        for row in services.values("host__zone_id", "host__tags").annotate(n=Count("pk")).order_by():
            if row["host__tags"] is not None:
                exposed[home_item(row["host__zone_id"], row["host__tags"])] += row["n"]
    views = PortView.objects.filter(where, state=PortState.OPEN)
    for row in views.values("vantage_id", by).annotate(n=Count("pk")).order_by():
        if row[by] is not None:
            exposed[_cell_item(query.rows, row["vantage_id"], row[by])] += row["n"]
    violations = SegmentationViolation.objects.filter(violation_condition(query))
    for row in violations.values("vantage_id", by).annotate(n=Count("pk")).order_by():
        if row[by] is not None:
            violated[_cell_item(query.rows, row["vantage_id"], row[by])] += row["n"]
    return _assemble(query, exposed, violated)


def _cell_item(rows: str, vantage_id: int, row_id: int) -> str:
    if rows == ROWS_ZONE:
        return view_item(vantage_id, zone_id=row_id)
    return view_item(vantage_id, tag_id=row_id)


def _assemble(query: Query, exposed: dict[str, int], violated: dict[str, int]) -> Matrix:
    vantages = list(VantagePoint.objects.order_by("name"))
    rows = []
    if query.rows == ROWS_ZONE:
        for zone in Zone.objects.order_by("name"):
            row = Row(ROWS_ZONE, zone)
            for vantage in vantages:
                n = exposed.get(view_item(vantage.pk, zone_id=zone.pk), 0)
                if vantage.home_of_id == zone.pk:
                    n += exposed.get(home_item(zone.pk), 0)
                row.cells.append(Cell(vantage, n, violated.get(view_item(vantage.pk, zone_id=zone.pk), 0)))
            rows.append(row)
    else:
        for tag in Tag.objects.order_by("name"):
            row = Row(ROWS_TAG, tag)
            for vantage in vantages:
                n = exposed.get(view_item(vantage.pk, tag_id=tag.pk), 0)
                if vantage.home_of_id is not None:
                    n += exposed.get(home_item(vantage.home_of_id, tag.pk), 0)
                row.cells.append(Cell(vantage, n, violated.get(view_item(vantage.pk, tag_id=tag.pk), 0)))
            rows.append(row)
    return Matrix(query, vantages, rows)


def read_matrix(query: Query) -> Matrix:
    """The page's and the API's matrix: kept counts unless a filter narrows it."""
    return counted(query) if query.filtered else kept(query.rows)


# --- filters as conditions on ports (Service, PortView) and violations --------------------------


def port_condition(query: Query) -> Q:
    """The ports a query keeps, on a model with host, protocol, port and name (Service, PortView)."""
    where = _numbers(query)
    if query.risk is not None:
        risky = Risky.of(query.risk)
        where &= risky.by_port if risky.names is None else risky.by_port | (risky.names & ~risky.numbered)
    return where


def violation_condition(query: Query) -> Q:
    """The violations a query keeps: SegmentationViolation has no service name, its exposure has."""
    where = _numbers(query)
    if query.rule is not None:
        where &= Q(rule=query.rule)
    if query.risk is not None:
        risky = Risky.of(query.risk)
        named = Q(pk__in=[])
        if risky.names is not None:
            # Only a port no number rule names is rated by its name: the
            # exposure's name is looked up for those alone.
            # (The home's exposure is the inventory's row: one probe of its unique index.)
            same = {"host_id": OuterRef("host_id"), "protocol": OuterRef("protocol"), "port": OuterRef("port")}
            home = Q(vantage__home_of_id=F("host__zone_id")) & Q(Exists(Service.objects.filter(risky.names, **same)))
            view = Q(Exists(PortView.objects.filter(risky.names, **same, vantage_id=OuterRef("vantage_id"))))
            named = ~risky.numbered & (home | view)
        where &= risky.by_port | named
    return where


def _numbers(query: Query) -> Q:
    where = Q()
    if query.ports is not None:
        ranges = Q(pk__in=[])
        for low, high in query.ports.ranges:
            ranges |= Q(port=low) if low == high else Q(port__gte=low, port__lte=high)
        where &= ranges
    if query.protocol:
        where &= Q(protocol=query.protocol)
    if query.rule is not None:
        # The ports the rule covers, in its scope (what it could govern, from any vantage point).
        where &= segmentation.reach_of(query.rule)
    return where


@dataclass(frozen=True)
class Risky:
    """The risk table's kinds of at least a severity, as conditions on a row's protocol, port and name.

    As ``inventory.risk`` decides: a rule for the port's number first, a
    rule for its service name only on a port no number rule names
    (``names & ~numbered``). One IN list per protocol, matched from an index.
    """

    by_port: Q
    numbered: Q
    names: Q | None

    @classmethod
    def of(cls, severity: int) -> "Risky":
        risky_ports, numbered, names = defaultdict(set), defaultdict(set), defaultdict(set)
        for rule in RiskRule.objects.all():
            if rule.port is not None:
                numbered[rule.protocol].add(rule.port)
                if rule.severity >= severity:
                    risky_ports[rule.protocol].add(rule.port)
            if rule.service_name and rule.severity >= severity:
                names[rule.protocol].add(rule.service_name)

        def listed(by: dict, field: str) -> Q:
            condition = Q(pk__in=[])
            for protocol, values in by.items():
                condition |= Q(protocol=protocol, **{f"{field}__in": sorted(values)})
            return condition

        return cls(listed(risky_ports, "port"), listed(numbered, "port"), listed(names, "name") if names else None)
