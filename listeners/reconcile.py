"""The host's own report side by side with what every vantage point's scans see.

For each protocol and port of a host (DESIGN.md, "Views of a port"):

| the host's newest report (fresh)     | the scans (any vantage point)   | finding    |
| ------------------------------------ | ------------------------------- | ---------- |
| listens on all interfaces or an address | open from one at least       | exposed    |
| listens on all interfaces or an address | probed, open from none       | shielded: only a firewall stands in the way |
| listens on all interfaces or an address | never probed                 | unscanned: nothing is concluded |
| listens on loopback only             | open from none                  | local      |
| listens on loopback only, or not at all | open from one at least       | forwarded: something else answers |

(Forwarded: NAT, a proxy, a load balancer or a container's published port.)

A report older than ``LISTENER_REPORT_MAX_AGE_HOURS`` counts for nothing:
the page says how old it is, and no port is judged from it. What a scan
saw is its newest state, a stale view included (as the exposure matrix
counts it): a port is "open from" a vantage point while its view says open.
A port counts as probed when some view of it exists (open, closed or
filtered), or the home's last scan that found the host probed it.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from inventory.choices import PortState
from inventory.models import Host, PortRule, Service
from listeners import findings
from listeners.choices import BIND_BROKEN, SCOPE_RANK, Finding, Scope
from listeners.models import HostReport, Listener, PortFinding
from reach.models import PortView, VantagePoint


def classify(scope: str | None, reachable: bool, probed: bool) -> str | None:
    """The finding for a port listening at ``scope`` (None: not listening), open from somewhere, probed at all."""
    if scope in (Scope.ALL, Scope.ADDRESS):
        if reachable:
            return Finding.EXPOSED
        return Finding.SHIELDED if probed else Finding.UNSCANNED
    if reachable:
        return Finding.FORWARDED
    return Finding.LOCAL if scope == Scope.LOOPBACK else None


@dataclass
class JudgedPort:
    protocol: str
    port: int
    listeners: list[Listener] = field(default_factory=list)
    open_from: list[str] = field(default_factory=list)  # vantage point names
    probed: bool = False
    # The port rule saying where it may listen that a listener breaks (kept: listeners.findings.judge_binds).
    bind_rule: PortRule | None = None

    @property
    def scope(self) -> str | None:
        if not self.listeners:
            return None
        return max((listener.scope for listener in self.listeners), key=SCOPE_RANK.__getitem__)

    @property
    def finding(self) -> str | None:
        return classify(self.scope, bool(self.open_from), self.probed)

    @property
    def finding_label(self) -> str:
        return Finding(self.finding).label if self.finding else ""


@dataclass
class HostView:
    host: Host
    report: HostReport | None
    fresh: bool
    max_age: timedelta
    ports: list[JudgedPort]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys([*Finding.values, BIND_BROKEN], 0)
        for port in self.ports:
            if port.finding:
                counts[port.finding] += 1
            if port.bind_rule is not None:
                counts[BIND_BROKEN] += 1
        return counts


def max_age() -> timedelta:
    return timedelta(hours=settings.LISTENER_REPORT_MAX_AGE_HOURS)


def newest_report(host: Host) -> HostReport | None:
    return HostReport.objects.filter(host=host, applied=True).order_by("-taken_at", "-id").first()


def for_host(
    host: Host, *, protocol: str | None = None, port: int | None = None, now: datetime | None = None
) -> HostView:
    """The host's ports (or one, given ``protocol`` and ``port``) judged from its fresh report and the scans."""
    now = now or timezone.now()
    report = newest_report(host)
    fresh = report is not None and report.taken_at >= now - max_age()
    only = {"protocol": protocol, "port": port} if port is not None else {}
    ports: dict[tuple, JudgedPort] = {}

    def entry(key) -> JudgedPort:
        return ports.setdefault(key, JudgedPort(*key))

    if not fresh:
        return HostView(host, report, fresh, max_age(), [])  # nothing is judged from an old report, or none
    for listener in Listener.objects.filter(host=host, **only).order_by("protocol", "port", "address"):
        entry((listener.protocol, listener.port)).listeners.append(listener)
    home = VantagePoint.objects.filter(home_of_id=host.zone_id).values_list("name", flat=True).first()
    seen = [(row, home) for row in Service.objects.filter(host=host, **only).values("protocol", "port", "state")]
    views = PortView.objects.filter(host=host, **only).values("protocol", "port", "state", "vantage__name")
    seen += [(row, row["vantage__name"]) for row in views]
    for row, vantage in seen:
        found = entry((row["protocol"], row["port"]))
        found.probed = True
        if row["state"] == PortState.OPEN and vantage:
            found.open_from.append(vantage)
    if host.seen_ports_id is not None and findings.probed_sets_considered():
        # The home's last scan that found the host probed these: a port in them that is not open was looked at.
        for found in ports.values():
            if not found.probed and host.seen_ports.covers(found.protocol, found.port):
                found.probed = True
    judged = sorted(
        (found for found in ports.values() if found.finding or found.listeners),
        key=lambda found: (found.protocol, found.port),
    )
    broken = PortFinding.objects.filter(host=host, **only).exclude(bind_rule=None).select_related("bind_rule")
    rules = {(row.protocol, row.port): row.bind_rule for row in broken}
    for found in judged:
        found.open_from.sort()
        found.bind_rule = rules.get((found.protocol, found.port))
    return HostView(host, report, fresh, max_age(), judged)
