"""The scan scope: which networks PortWatch may scan, which it never touches.

An address may be scanned when an *allow* rule covers it and no *exclude*
rule does (exclusions win). A target item that reaches outside the allowed
networks is refused with its reason; one that lies entirely in exclusions is
refused too; the excluded addresses inside an otherwise allowed item are
skipped when the run is planned. Hostnames are checked again once resolved,
when their chunk runs.

Pure: rules in, decisions out. ``ScopeRule`` rows feed it through
``Scope.current()``.
"""

import bisect
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from scans.choices import ScopeAction
from scans.targets import IPAddress, TargetItem

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ScopeError(ValueError):
    """A target reaches outside the scan scope."""


@dataclass(frozen=True)
class Rule:
    network: IPNetwork
    action: str
    reason: str = ""


class _Intervals:
    """Merged integer intervals of one IP version, for containment tests."""

    def __init__(self, networks: Iterable[tuple[IPNetwork, str]]):
        spans = sorted((int(net.network_address), int(net.broadcast_address), reason) for net, reason in networks)
        self.spans: list[tuple[int, int, str]] = []
        for low, high, reason in spans:
            if self.spans and low <= self.spans[-1][1] + 1:
                last_low, last_high, last_reason = self.spans[-1]
                self.spans[-1] = (last_low, max(last_high, high), last_reason)
            else:
                self.spans.append((low, high, reason))
        self.starts = [low for low, _, _ in self.spans]

    def find(self, value: int) -> tuple[int, int, str] | None:
        index = bisect.bisect_right(self.starts, value) - 1
        if index >= 0 and value <= self.spans[index][1]:
            return self.spans[index]
        return None

    def covers(self, low: int, high: int) -> bool:
        span = self.find(low)
        return span is not None and high <= span[1]

    def overlaps(self, low: int, high: int) -> bool:
        index = bisect.bisect_right(self.starts, high) - 1
        return index >= 0 and self.spans[index][1] >= low


class Scope:
    def __init__(self, rules: Iterable[Rule]):
        rules = list(rules)
        self._allowed = {
            version: _Intervals(
                (r.network, r.reason) for r in rules if r.action == ScopeAction.ALLOW and r.network.version == version
            )
            for version in (4, 6)
        }
        self._excluded = {
            version: _Intervals(
                (r.network, r.reason) for r in rules if r.action == ScopeAction.EXCLUDE and r.network.version == version
            )
            for version in (4, 6)
        }

    @classmethod
    def current(cls) -> "Scope":
        """The scope as the admins configured it."""
        from scans.models import ScopeRule  # noqa: PLC0415 - keep this module importable without Django

        return cls(rule.as_rule() for rule in ScopeRule.objects.all())

    def check_item(self, item: TargetItem) -> None:
        """Raise ScopeError unless the item may be scanned (at least in part)."""
        if item.kind == "hostname":
            return  # checked once resolved
        version, low, high = item.first.version, int(item.first), int(item.last)
        if self._excluded[version].covers(low, high):
            reason = self._excluded[version].find(low)[2]
            raise ScopeError(f"{item.text} is excluded from scanning ({reason or 'scope exclusion'}).")
        if not self._allowed[version].covers(low, high):
            raise ScopeError(
                f"{item.text} is outside the scan scope. Private, loopback and ULA networks are allowed by "
                "default; an admin can allow other networks under Scope."
            )

    def check_items(self, items: Iterable[TargetItem]) -> None:
        for item in items:
            self.check_item(item)

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be scanned, or None if it may."""
        value = int(address)
        excluded = self._excluded[address.version].find(value)
        if excluded is not None:
            return f"{address} is excluded from scanning ({excluded[2] or 'scope exclusion'})"
        if self._allowed[address.version].find(value) is None:
            return f"{address} is outside the scan scope"
        return None

    def excludes_part_of(self, item: TargetItem) -> bool:
        if item.first is None:
            return False
        return self._excluded[item.first.version].overlaps(int(item.first), int(item.last))

    def is_excluded(self, address: IPAddress) -> bool:
        return self._excluded[address.version].find(int(address)) is not None
