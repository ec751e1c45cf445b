"""One cell of the exposure matrix, listed: the open ports a vantage point reaches in a zone or a tag.

A home vantage point reaches its zone's hosts through the inventory
(Service rows) and any other zone's hosts through its own view (PortView
rows, when a target of that zone is scanned from it); every other vantage
point only through its view. A cell's list is the one or two of them that
apply, merged in the order (host, protocol, port), a page at a time after a
cursor: each source is read from its index after the cursor, never skipped
through with an OFFSET, so every page costs the first's.

With ``violations`` the list is the cell's segmentation violations instead
(each with its rule and since when).
"""

import re
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import BadRequest
from django.db.models import Q, QuerySet

from inventory.choices import PortState, Protocol
from inventory.filters import tagged_hosts
from inventory.models import Host, Service, Tag, Zone
from reach.matrix import Query, port_condition, violation_condition
from reach.models import PortView, SegmentationRule, SegmentationViolation, VantagePoint

PAGE = 50
INVALID_CURSOR = "This page link is not valid (it was altered or cut short). Start again from the first page."
_CURSOR = re.compile(r"^(\d{1,19})-(tcp|udp|sctp)-(\d{1,5})$")


@dataclass(frozen=True)
class Cursor:
    host_id: int
    protocol: str
    port: int

    def __str__(self) -> str:
        return f"{self.host_id}-{self.protocol}-{self.port}"

    @classmethod
    def parse(cls, text: str | None) -> "Cursor | None":
        if not text:
            return None
        match = _CURSOR.match(text)
        if match is None or match[2] not in Protocol.values:
            raise BadRequest(INVALID_CURSOR)
        return cls(int(match[1]), match[2], int(match[3]))

    def after(self) -> list[Q]:
        """The rows after it, as two index ranges: the rest of its host, then the hosts after it."""
        later_port = Q(protocol__gt=self.protocol) | Q(protocol=self.protocol, port__gt=self.port)
        same_host = Q(host_id=self.host_id) & later_port
        return [same_host, Q(host_id__gt=self.host_id)]


@dataclass
class Exposure:
    """One open port a vantage point reaches (or one violation, with ``rule`` and ``since``)."""

    host: Host
    protocol: str
    port: int
    name: str = ""
    stale: bool = False
    last_seen: datetime | None = None
    # From the inventory (the zone's home) rather than the vantage point's own view.
    home: bool = False
    rule: SegmentationRule | None = None
    since: datetime | None = None

    @property
    def key(self) -> tuple:
        return (self.host.pk, self.protocol, self.port)


@dataclass
class Page:
    rows: list[Exposure]
    next: Cursor | None


def sources(vantage: VantagePoint, *, zone: Zone | None, tag: Tag | None, query: Query) -> list[QuerySet]:
    """The querysets a cell's open ports come from (Service, PortView), narrowed to the cell and the query."""
    scope = Q()
    if zone is not None:
        scope &= Q(host__zone=zone)
    if tag is not None:
        scope &= Q(host_id__in=tagged_hosts(tag))
    where = scope & port_condition(query)
    found = []
    if vantage.home_of_id is not None and (zone is None or zone.pk == vantage.home_of_id):
        found.append(Service.objects.filter(where, state=PortState.OPEN, host__zone_id=vantage.home_of_id))
    found.append(PortView.objects.filter(where, vantage=vantage, state=PortState.OPEN))
    return found


def violations(vantage: VantagePoint, *, zone: Zone | None, tag: Tag | None, query: Query) -> QuerySet:
    where = violation_condition(query)
    if zone is not None:
        where &= Q(host__zone=zone)
    if tag is not None:
        where &= Q(host_id__in=tagged_hosts(tag))
    return SegmentationViolation.objects.filter(where, vantage=vantage)


def page(
    vantage: VantagePoint,
    *,
    zone: Zone | None = None,
    tag: Tag | None = None,
    query: Query,
    only_violations: bool = False,
    after: Cursor | None = None,
    size: int = PAGE,
) -> Page:
    """A page of a cell's list, after ``after``: its rows and the cursor of the next page (None: the last)."""
    querysets = (
        [violations(vantage, zone=zone, tag=tag, query=query)]
        if only_violations
        else sources(vantage, zone=zone, tag=tag, query=query)
    )
    rows: list[Exposure] = []
    for queryset in querysets:
        rows.extend(_read(queryset, after, size + 1))
    rows.sort(key=lambda row: row.key)
    more = len(rows) > size
    rows = rows[:size]
    if not only_violations:
        _mark_violations(vantage, rows)
    last = rows[-1] if more and rows else None
    return Page(rows, Cursor(*last.key) if last else None)


def _read(queryset: QuerySet, after: Cursor | None, limit: int) -> list[Exposure]:
    """Up to ``limit`` rows after the cursor, in (host, protocol, port) order: one or two index ranges."""
    queryset = queryset.select_related("host__zone").order_by("host_id", "protocol", "port")
    if queryset.model is SegmentationViolation:
        queryset = queryset.select_related("rule__zone", "rule__tag", "rule__host__zone").prefetch_related(
            "rule__vantage_points"
        )
    ranges = after.after() if after else [Q()]
    found: list = []
    for condition in ranges:
        if len(found) >= limit:
            break
        found.extend(queryset.filter(condition)[: limit - len(found)])
    return [_exposure(row) for row in found]


def _exposure(row) -> Exposure:
    if isinstance(row, SegmentationViolation):
        return Exposure(row.host, row.protocol, row.port, rule=row.rule, since=row.since)
    if isinstance(row, Service):
        return Exposure(row.host, row.protocol, row.port, row.name, row.stale, row.seen_at, home=True)
    return Exposure(row.host, row.protocol, row.port, row.name, row.stale, row.last_seen)


def _mark_violations(vantage: VantagePoint, rows: list[Exposure]) -> None:
    """The rule each listed port violates from this vantage point, if any.

    The page's hosts' violations from here are read as plain values (a host
    may have many: a zone-wide rule violates every port), then the few rules
    they name are loaded once each.
    """
    if not rows:
        return
    found = SegmentationViolation.objects.filter(vantage=vantage, host_id__in={row.host.pk for row in rows})
    by_key = {
        (host, protocol, port): (rule, since)
        for host, protocol, port, rule, since in found.values_list("host_id", "protocol", "port", "rule_id", "since")
    }
    wanted = {by_key[row.key][0] for row in rows if row.key in by_key}
    rules = SegmentationRule.objects.filter(pk__in=wanted).select_related("zone", "tag", "host__zone")
    rules = {rule.pk: rule for rule in rules.prefetch_related("vantage_points")}
    for row in rows:
        rule_id, since = by_key.get(row.key, (None, None))
        if rule_id in rules:  # (a rule deleted between the two reads took its violation along)
            row.rule, row.since = rules[rule_id], since
