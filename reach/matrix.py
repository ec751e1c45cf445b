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
port, protocol, risk or a rule of a zone, a tag or everywhere) they are the
same counts kept per port, service name and rule, summed over the ports the
filter keeps (``per_port``): a few rows per port, whatever the number of
hosts. Only a rule of a network or a host, and the few violations the risk
table rates by their service's name, are counted from the rows on request
(``counted``, from the indexes of the rows that match). All produce the same
items, so ``counted(query)`` equals ``per_port(query)`` and
``counted(Query())`` equals ``kept()``: the tests hold them to each other.
"""

import re
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Sum

from inventory.choices import PortState, RuleScope
from inventory.models import RiskRule, Service, Tag, Zone
from inventory.ports import PortSet
from reach import segmentation
from reach.models import PortView, SegmentationRule, SegmentationViolation, VantagePoint
from tallies import read
from tallies.choices import EXACT, Figure
from tallies.models import TallyRow

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
    exposed: dict[str, int] = defaultdict(int)
    violated: dict[str, int] = defaultdict(int)
    _count_rows(query.rows, port_condition(query), violation_condition(query), exposed, violated)
    return _assemble(query, exposed, violated)


def _count_rows(rows: str, ports: Q | None, violations: Q, exposed: dict, violated: dict) -> None:
    """Add to ``exposed`` the open ports matching ``ports`` (None: none), to ``violated`` the ``violations``."""
    by = "host__zone_id" if rows == ROWS_ZONE else "host__tags"
    if ports is not None:
        _count_ports(rows, by, ports, exposed)
    for row in (
        SegmentationViolation.objects.filter(violations).values("vantage_id", by).annotate(n=Count("pk")).order_by()
    ):
        if row[by] is not None:
            violated[_cell_item(rows, row["vantage_id"], row[by])] += row["n"]


def _count_ports(rows: str, by: str, where: Q, exposed: dict) -> None:
    services = Service.objects.filter(where, state=PortState.OPEN)
    if rows == ROWS_ZONE:
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
            exposed[_cell_item(rows, row["vantage_id"], row[by])] += row["n"]


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
    """The page's and the API's matrix: from the kept counts, per port when a filter narrows it."""
    if not query.filtered:
        return kept(query.rows)
    return per_port(query) if summed_per_port(query) else counted(query)


# --- narrowed: the counts kept per port ------------------------------------------------------


def summed_per_port(query: Query) -> bool:
    """Whether the per-port counts give ``query``'s matrix (``per_port``), else it is ``counted``.

    A rule picks its rows by the zone or tag in a per-port count's item: a
    rule of everywhere, a zone, or a tag when the rows are zones. Counted
    from the rows: a rule of a network or a host, and a tag's rule by tag
    rows (each row is the hosts of the rule's tag that also have the row's
    tag: the counts are not kept per pair of tags).
    """
    rule = query.rule
    if rule is None or rule.scope in (RuleScope.GLOBAL, RuleScope.ZONE):
        return True
    return rule.scope == RuleScope.TAG and query.rows == ROWS_ZONE


# The per-port items (tallies.sources): [r<rule>:][v<vantage>:]z<zone>[:t<tag>].
_ITEM = re.compile(r"(?:r(?P<rule>\d+):)?(?:v(?P<vantage>\d+):)?z(?P<zone>\d+)(?::t(?P<tag>\d+))?")


def per_port(query: Query) -> Matrix:
    """The matrix narrowed by ``query``, summed from the counts kept per port (``Figure.PER_PORT``).

    The same as ``counted(query)``. Each count names its protocol and port
    (the open ports' also their service's name, so the risk table's name
    rules apply to them as to a Service row), its vantage point, zone and
    tag, and a violation's its rule. The one thing not kept: a violation's
    service name. The risk table rates by name only a port no number rule
    names, so only violations on such ports, where an open port of a risky
    name is counted, are counted from their rows.
    """
    if not summed_per_port(query):
        raise ValueError("this rule's matrix is counted from the rows (summed_per_port)")
    rule = query.rule
    ports = _numbers(Query(ports=query.ports, protocol=query.protocol), rule_ports=rule)
    opened = violations = ports
    risky = Risky.of(query.risk) if query.risk is not None else None
    if risky is not None:
        violations = ports & risky.by_port
        opened = ports & (risky.by_port if risky.names is None else risky.by_port | (risky.names & ~risky.numbered))
    # Rows of tags when the matrix's rows are tags, or the rule's scope is one (its hosts' tag rows, summed by zone).
    tagged = query.rows == ROWS_TAG or (rule is not None and rule.scope == RuleScope.TAG)
    exposed: dict[str, int] = defaultdict(int)
    violated: dict[str, int] = defaultdict(int)
    named_ports: dict[str, set[int]] = defaultdict(set)
    for key, protocol, port, name, n in _per_port_rows(Figure.EXPOSED_PORT, opened, tagged, rule):
        exposed[_per_port_item(query.rows, key)] += n
        if risky is not None and risky.rates_by_name(protocol, port, name):
            named_ports[protocol].add(port)
    for key, _protocol, _port, _name, n in _per_port_rows(Figure.VIOLATED_PORT, violations, tagged, rule):
        violated[_per_port_item(query.rows, key)] += n
    if named_ports:
        # Violations where an open port is rated by its name: counted from their rows, on those ports only.
        on_ports = Q(pk__in=[])
        for protocol, numbers in named_ports.items():
            on_ports |= Q(protocol=protocol, port__in=sorted(numbers))
        where = on_ports & violation_condition(query) & ~risky.by_port
        _count_rows(query.rows, None, where, exposed, violated)
    return _assemble(query, exposed, violated)


def _per_port_rows(figure: str, where: Q, tagged: bool, rule: SegmentationRule | None):
    """(item's parts, protocol, port, name, n) of ``figure``'s counts matching ``where``, ``rule``'s scope and rule."""
    rows = (
        TallyRow.objects.filter(where, figure=figure, grain=EXACT)
        .values_list("item", "protocol", "port", "name")
        .annotate(total=Sum("n"))
        .order_by()
    )
    for item, protocol, port, name, n in rows:
        key = _ITEM.fullmatch(item)
        if not n or key is None or (key["tag"] is not None) != tagged:
            continue
        if rule is not None:
            if key["rule"] is not None and int(key["rule"]) != rule.pk:
                continue
            if rule.scope == RuleScope.ZONE and int(key["zone"]) != rule.zone_id:
                continue
            if rule.scope == RuleScope.TAG and int(key["tag"]) != rule.tag_id:
                continue
        yield key, protocol, port, name, int(n)


def _per_port_item(rows: str, key: re.Match) -> str:
    """The cell item (as ``kept`` reads them) a per-port count adds to."""
    zone, tag = int(key["zone"]), key["tag"] and int(key["tag"])
    if key["vantage"] is None:
        return home_item(zone, tag if rows == ROWS_TAG else None)
    vantage = int(key["vantage"])
    return view_item(vantage, tag_id=tag) if rows == ROWS_TAG else view_item(vantage, zone_id=zone)


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


def _numbers(query: Query, *, rule_ports: SegmentationRule | None = None) -> Q:
    """The query's ports and protocol, and its rule's reach (or, given ``rule_ports``, that rule's ports alone)."""
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
    if rule_ports is not None:
        where &= segmentation.ports_of(rule_ports)
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
    # The same as values: {protocol: port numbers a rule names}, {protocol: risky names}.
    numbered_ports: dict
    risky_names: dict

    def rates_by_name(self, protocol: str, port: int, name: str) -> bool:
        """Whether the port is rated by its service name, and risky by it (``names & ~numbered``)."""
        return name in self.risky_names.get(protocol, ()) and port not in self.numbered_ports.get(protocol, ())

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

        return cls(
            listed(risky_ports, "port"),
            listed(numbered, "port"),
            listed(names, "name") if names else None,
            dict(numbered),
            dict(names),
        )
