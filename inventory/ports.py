"""Port sets: parsed from what users type, normalised, and compared.

A ``PortSet`` is an immutable list of merged, sorted, inclusive ranges within
1-65535. It is what reaches nmap's ``-p`` (always produced by ``str()``, never
the user's text) and what a scan's coverage records as "probed".
"""

import bisect
import re
from collections.abc import Iterable

from inventory.constants import MAX_PORT_ITEMS, PORT_MAX, PORT_MIN

_ITEM = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
_SEPARATORS = re.compile(r"\s*,\s*|\s+")


class PortSpecError(ValueError):
    """The text is not a list of ports and port ranges."""


class PortSet:
    __slots__ = ("_ranges", "_starts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()):
        merged: list[tuple[int, int]] = []
        for low, high in sorted(ranges):
            if not (PORT_MIN <= low <= high <= PORT_MAX):
                raise PortSpecError(f"{low}-{high} is not a range within {PORT_MIN}-{PORT_MAX}")
            if merged and low <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], high))
            else:
                merged.append((low, high))
        self._ranges = tuple(merged)
        self._starts = [low for low, _ in merged]

    @classmethod
    def parse(cls, text: str, *, max_items: int = MAX_PORT_ITEMS) -> "PortSet":
        """Parse "22,80,8000-8100". Every bad item is named in the error."""
        if "\x00" in text:
            raise PortSpecError("Ports contain a NUL byte.")
        stripped = text.strip()
        if not stripped:
            raise PortSpecError("Enter at least one port, for example 22,80,443 or 1-1024.")
        items = _SEPARATORS.split(stripped)
        if "" in items:
            raise PortSpecError("Ports contain an empty item (a stray comma).")
        if len(items) > max_items:
            raise PortSpecError(f"Too many port items ({len(items)}); at most {max_items}. Use ranges such as 1-1024.")
        ranges = []
        for item in items:
            match = _ITEM.match(item)
            if not match:
                raise PortSpecError(f"{_shown(item)} is not a port or a range such as 8000-8100.")
            low = int(match.group(1))
            high = int(match.group(2)) if match.group(2) is not None else low
            for value in (low, high):
                if not PORT_MIN <= value <= PORT_MAX:
                    raise PortSpecError(f"{value} is not a port; ports are {PORT_MIN}-{PORT_MAX}.")
            if low > high:
                raise PortSpecError(f"{item} is a backwards range; write {high}-{low}.")
            ranges.append((low, high))
        return cls(ranges)

    @classmethod
    def from_nmap(cls, services: str) -> "PortSet":
        """Read the ``services`` attribute of nmap's ``<scaninfo>``."""
        if not services:
            return cls()
        return cls.parse(services, max_items=PORT_MAX)

    @classmethod
    def all_ports(cls) -> "PortSet":
        return cls([(PORT_MIN, PORT_MAX)])

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        return self._ranges

    def __contains__(self, port: int) -> bool:
        index = bisect.bisect_right(self._starts, port) - 1
        return index >= 0 and port <= self._ranges[index][1]

    def __len__(self) -> int:
        return sum(high - low + 1 for low, high in self._ranges)

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def __eq__(self, other) -> bool:
        return isinstance(other, PortSet) and self._ranges == other._ranges

    def __hash__(self) -> int:
        return hash(self._ranges)

    def __or__(self, other: "PortSet") -> "PortSet":
        return PortSet(self._ranges + other._ranges)

    def __str__(self) -> str:
        return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in self._ranges)

    def __repr__(self) -> str:
        return f"PortSet({str(self)!r})"


def _shown(item: str) -> str:
    """Quote a bad token for an error message, short and printable."""
    text = item if len(item) <= 40 else item[:37] + "..."
    return repr(text)
