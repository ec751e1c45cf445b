"""Pure reader of masscan's list output (``-oL``), as the fast-discovery sweep writes it.

One line per answer: ``<state> <protocol> <port> <address> <unix time>``,
``#`` comments around them. ``open tcp`` is an open port; any other line
(``closed tcp`` with ``--show closed``, ``open icmp 0`` with ``--ping``)
says only that the address answered. The sweep reads its own output, but
still as untrusted text: each field is checked, a line is bounded, and an
error names the line.
"""

import ipaddress
from dataclasses import dataclass, field

# masscan's lines are about 50 characters; anything far longer is not its output.
LINE_MAX = 200
_STATES = frozenset({"open", "closed"})
_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "sctp"})


class MasscanListError(ValueError):
    """The file is not masscan's list output."""


@dataclass
class SweepFinds:
    """What a sweep heard: addresses that answered anything, and open TCP ports per address."""

    answered: set[str] = field(default_factory=set)
    open_ports: dict[str, set[int]] = field(default_factory=dict)

    def only(self, addresses: set[str]) -> "SweepFinds":
        """Keep what ``addresses`` (those the sweep was told to probe) said: nothing else may count."""
        return SweepFinds(
            self.answered & addresses,
            {address: ports for address, ports in self.open_ports.items() if address in addresses},
        )

    @property
    def port_count(self) -> int:
        return sum(len(ports) for ports in self.open_ports.values())


def read_list(stream) -> SweepFinds:
    """Read ``stream`` (text) line by line; MasscanListError naming the first bad line."""
    finds = SweepFinds()
    for number, raw in enumerate(stream, 1):
        if len(raw) > LINE_MAX:
            raise MasscanListError(f"line {number} is longer than {LINE_MAX} characters: not masscan's list output")
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if len(words) != 5 or words[0] not in _STATES or words[1] not in _PROTOCOLS:
            raise MasscanListError(f"line {number} is not a masscan list record: {line[:80]!r}")
        state, protocol, port_text, address_text, _ = words
        try:
            address = str(ipaddress.ip_address(address_text))
            port = int(port_text)
        except ValueError:
            raise MasscanListError(f"line {number} has a bad address or port: {line[:80]!r}") from None
        if not 0 <= port <= 65535:
            raise MasscanListError(f"line {number}: port {port} is not within 0-65535")
        finds.answered.add(address)
        if state == "open" and protocol == "tcp" and port >= 1:
            finds.open_ports.setdefault(address, set()).add(port)
    return finds
