"""Scan targets: parsed from what users type into typed objects.

Nothing a user types reaches nmap. Each item is parsed into an address, a
network, an address range or an IDNA hostname; anything else is an error that
names the token. Chunks later hand nmap addresses and networks rebuilt from
these objects, written to a file for ``-iL``.
"""

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import idna

from scans.constants import MAX_TARGET_ADDRESSES, MAX_TARGET_ITEMS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ItemKind = Literal["address", "network", "range", "hostname"]

_SEPARATORS = re.compile(r"[\s,]+")
# nmap's short range form: the last octet only, e.g. 10.0.0.1-50.
_SHORT_RANGE = re.compile(r"^(\d{1,3}\.\d{1,3}\.\d{1,3}\.)(\d{1,3})-(\d{1,3})$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class TargetSpecError(ValueError):
    """The text is not a list of addresses, networks, ranges and hostnames."""


@dataclass(frozen=True)
class TargetItem:
    kind: ItemKind
    # Canonical text: what is stored and shown, never what nmap is given.
    text: str
    first: IPAddress | None = None
    last: IPAddress | None = None

    @property
    def size(self) -> int:
        """Addresses covered; a hostname counts once until it is resolved."""
        if self.first is None:
            return 1
        return int(self.last) - int(self.first) + 1

    def addresses(self) -> Iterator[IPAddress]:
        if self.first is None:
            return
        cls = type(self.first)
        for value in range(int(self.first), int(self.last) + 1):
            yield cls(value)


def parse_targets(text: str, *, max_addresses: int = MAX_TARGET_ADDRESSES) -> list[TargetItem]:
    """Parse a whitespace- or comma-separated list of targets.

    Raises ``TargetSpecError`` naming the first bad token, or the size when
    the list covers more than ``max_addresses`` addresses.
    """
    if "\x00" in text:
        raise TargetSpecError("Targets contain a NUL byte.")
    tokens = [token for token in _SEPARATORS.split(text.strip()) if token]
    if not tokens:
        raise TargetSpecError("Enter at least one address, network, range or hostname.")
    if len(tokens) > MAX_TARGET_ITEMS:
        raise TargetSpecError(f"Too many targets ({len(tokens)}); at most {MAX_TARGET_ITEMS}. Use networks or ranges.")
    items: list[TargetItem] = []
    seen: set[str] = set()
    total = 0
    for token in tokens:
        item = parse_target(token)
        if item.text in seen:
            continue
        seen.add(item.text)
        total += item.size
        if total > max_addresses:
            raise TargetSpecError(
                f"The targets cover more than {max_addresses:,} addresses "
                f"({item.text} alone is {item.size:,}); split them into smaller targets."
            )
        items.append(item)
    return items


def parse_target(token: str) -> TargetItem:
    """Parse one token, or raise an error that names it."""
    if token.startswith("-"):
        raise TargetSpecError(f"{_shown(token)} looks like a command-line option; targets are addresses or names.")
    if "%" in token:
        raise TargetSpecError(f"{_shown(token)} is not a valid IPv6 address: scope ids such as %eth0 are not accepted.")
    if "/" in token:
        return _parse_network(token)
    if "-" in token and (":" in token or token[:1].isdigit()):
        return _parse_range(token)
    try:
        address = ipaddress.ip_address(token)
    except ValueError:
        pass
    else:
        return TargetItem("address", str(address), address, address)
    if ":" in token:
        raise TargetSpecError(f"{_shown(token)} is not a valid IPv6 address.")
    if re.fullmatch(r"[\d.]+", token):
        raise TargetSpecError(f"{_shown(token)} is not a valid IPv4 address.")
    return TargetItem("hostname", parse_hostname(token))


def parse_hostname(token: str) -> str:
    """Return the ASCII (IDNA/punycode) form of a hostname, or raise."""
    name = token.rstrip(".")
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        raise TargetSpecError(f"{_shown(token)} is not a valid address, network, range or hostname.") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise TargetSpecError(f"{_shown(token)} is not a valid hostname.")
    if labels[-1].isdigit():
        raise TargetSpecError(f"{_shown(token)} is not a valid hostname or IPv4 address.")
    return ascii_name


def _parse_network(token: str) -> TargetItem:
    try:
        network = ipaddress.ip_network(token, strict=False)
    except ValueError:
        raise TargetSpecError(f"{_shown(token)} is not a valid network such as 10.0.0.0/24.") from None
    return TargetItem("network", str(network), network.network_address, network.broadcast_address)


def _parse_range(token: str) -> TargetItem:
    short = _SHORT_RANGE.match(token)
    if short:
        prefix, low, high = short.groups()
        start_text, end_text = prefix + low, prefix + high
    else:
        start_text, _, end_text = token.partition("-")
    try:
        start = ipaddress.ip_address(start_text)
        end = ipaddress.ip_address(end_text)
    except ValueError:
        raise TargetSpecError(f"{_shown(token)} is not a valid range such as 10.0.0.1-10.0.0.50.") from None
    if start.version != end.version:
        raise TargetSpecError(f"{_shown(token)} mixes IPv4 and IPv6.")
    if start > end:
        raise TargetSpecError(f"{_shown(token)} is a backwards range.")
    if start == end:
        return TargetItem("address", str(start), start, start)
    return TargetItem("range", f"{start}-{end}", start, end)


def format_targets(items: list[TargetItem]) -> str:
    """The canonical text stored on a target: one item per line."""
    return "\n".join(item.text for item in items)


def summarize(addresses: list[IPAddress]) -> list[str]:
    """Collapse sorted addresses into the fewest networks, for nmap's -iL."""
    result = []
    for version in (4, 6):
        networks = ipaddress.collapse_addresses(
            ipaddress.ip_network(address) for address in addresses if address.version == version
        )
        result.extend(str(net) if net.num_addresses > 1 else str(net.network_address) for net in networks)
    return result


def _shown(token: str) -> str:
    printable = "".join(ch if ch.isprintable() else "?" for ch in token)
    if len(printable) > 60:
        printable = printable[:57] + "..."
    return repr(printable)
