"""From where a port (or a host) is seen: the port and host pages' "Reachable from".

The zone's home vantage point sees what the inventory holds (the port's
Service row, the host's status); every other vantage point that looked has
its own view (PortView, HostView). A vantage point with no row has never
seen the port open from there: it either scanned the host and found the port
closed, filtered or unprobed (a port never seen open is not recorded), or
never scanned the host at all, which the host's views tell apart.
"""

from dataclasses import dataclass
from datetime import datetime

from inventory.models import Host, Service
from reach.liveness import Board, Liveness
from reach.models import HostView, PortView, SegmentationRule, SegmentationViolation, VantagePoint


@dataclass
class Sight:
    """One vantage point's view of a port or a host."""

    vantage: VantagePoint
    liveness: Liveness
    home: bool
    # The port's state or the host's status; "" when it was never seen open from there.
    state: str
    stale: bool = False
    name: str = ""
    last_seen: datetime | None = None
    # When it last scanned the host (a port's row: when it did not see the port open).
    last_scanned: datetime | None = None
    # A port's row: the segmentation rule that governs it from there (None: no rule speaks),
    # whether that rule forbids it, and the violation while it lasts.
    rule: SegmentationRule | None = None
    forbidden: bool = False
    violation: SegmentationViolation | None = None


@dataclass
class Reach:
    seen: list[Sight]
    # Vantage points (other than zones' homes) with no view: scanned the host, or never did.
    scanned_host_only: list[Sight]
    never_scanned: list[VantagePoint]


def _others(seen_ids: set[int]):
    return VantagePoint.objects.filter(home_of__isnull=True).exclude(pk__in=seen_ids).order_by("name")


def of_port(host: Host, protocol: str, port: int, service: Service | None) -> Reach:
    board = Board.read()
    home = VantagePoint.home(host.zone)
    seen = [
        Sight(
            home,
            board.of(home),
            home=True,
            state=service.state if service else "",
            stale=service.stale if service else False,
            name=service.name if service else "",
            last_seen=service.seen_at if service else None,
        )
    ]
    views = PortView.objects.filter(host=host, protocol=protocol, port=port).select_related("vantage__home_of")
    for view in sorted(views, key=lambda view: view.vantage.name):
        seen.append(
            Sight(
                view.vantage,
                board.of(view.vantage),
                home=False,
                state=view.state,
                stale=view.stale,
                name=view.name,
                last_seen=view.last_seen,
            )
        )
    scanned = dict(HostView.objects.filter(host=host).values_list("vantage_id", "last_scanned"))
    scanned_only, never = [], []
    for vantage in _others({sight.vantage.pk for sight in seen}):
        if vantage.pk in scanned:
            scanned_only.append(Sight(vantage, board.of(vantage), False, "", last_scanned=scanned[vantage.pk]))
        else:
            never.append(vantage)
    _judge(host, protocol, port, [*seen, *scanned_only])
    return Reach(seen, scanned_only, never)


def _judge(host: Host, protocol: str, port: int, sights: list[Sight]) -> None:
    """Each vantage point's governing segmentation rule for the port, and its violation (a query or two each)."""
    from reach import segmentation  # noqa: PLC0415 - segmentation builds on the views this module reads

    violations = SegmentationViolation.objects.filter(host=host, protocol=protocol, port=port)
    by_vantage = {violation.vantage_id: violation for violation in violations.select_related("rule")}
    for sight in sights:
        rules = segmentation.governing(host, protocol, port, sight.vantage)
        if rules:
            sight.rule = rules[0]
            sight.forbidden = segmentation.forbids(rules[0], sight.vantage)
        sight.violation = by_vantage.get(sight.vantage.pk)


def of_host(host: Host) -> Reach:
    board = Board.read()
    home = VantagePoint.home(host.zone)
    seen = [Sight(home, board.of(home), True, host.status, last_seen=host.last_seen, last_scanned=host.last_scanned)]
    for view in HostView.objects.filter(host=host).select_related("vantage__home_of").order_by("vantage__name"):
        seen.append(
            Sight(
                view.vantage,
                board.of(view.vantage),
                False,
                view.status,
                last_seen=view.last_seen,
                last_scanned=view.last_scanned,
            )
        )
    return Reach(seen, [], list(_others({sight.vantage.pk for sight in seen})))
