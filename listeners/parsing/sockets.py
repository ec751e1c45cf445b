"""What every report format is read into: a host's listening sockets.

Pure: no database, no Django. A parser returns a ``ParsedReport`` or raises
``ReportError`` naming the line, so a bad report writes nothing.
"""

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime

# A line longer than this is not one any of these tools prints.
MAX_LINE = 4096
# What the inventory keeps of a socket's text (listeners.models.Listener's columns), and the largest pid.
MAX_PROCESS, MAX_USER, MAX_INTERFACE, MAX_PID = 255, 150, 64, 2**31 - 1
_DIGITS = re.compile(r"[0-9]+")


def digits(text: str) -> bool:
    """Only ASCII digits ("²" is a digit to str.isdigit, not to int)."""
    return _DIGITS.fullmatch(text) is not None


def capped(socket: "Socket") -> "Socket":
    """A socket's text cut to the inventory's columns, an impossible pid dropped."""
    return Socket(
        socket.protocol,
        socket.address,
        socket.port,
        socket.interface[:MAX_INTERFACE],
        socket.process[:MAX_PROCESS],
        socket.pid if socket.pid is not None and 0 < socket.pid <= MAX_PID else None,
        socket.user[:MAX_USER],
    )


class ReportError(ValueError):
    """A report PortWatch cannot read; ``line`` is its 1-based line number, when one is to blame."""

    def __init__(self, message: str, line: int | None = None):
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


class BindScope:
    """Where a socket listens: every interface, one address, or loopback only."""

    ALL = "all"
    ADDRESS = "address"
    LOOPBACK = "loopback"


@dataclass(frozen=True)
class Socket:
    protocol: str  # "tcp", "udp" or "sctp"
    # The address bound, as the ipaddress module writes it, or "*" (every
    # address, IPv4 and IPv6: what ss prints for a dual-stack socket).
    address: str
    port: int
    interface: str = ""  # bound to a device too ("127.0.0.53%lo"): the device
    process: str = ""
    pid: int | None = None
    user: str = ""

    @property
    def scope(self) -> str:
        return bind_scope(self.address)


@dataclass
class ParsedReport:
    format: str
    sockets: list[Socket] = field(default_factory=list)
    # When the host took it, if the report says (osquery's unixTime); else the upload's time counts.
    taken_at: datetime | None = None
    # The name the host gave itself, if the report says (osquery's hostIdentifier).
    host_name: str = ""
    # Lines or rows read but not listening sockets (established connections, UNIX sockets...).
    skipped: int = 0


def bind_scope(address: str) -> str:
    if address == "*":
        return BindScope.ALL
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    if ip.is_unspecified:
        return BindScope.ALL
    if ip.is_loopback:
        return BindScope.LOOPBACK
    return BindScope.ADDRESS


_ENDPOINT = re.compile(r"\[(?P<bracketed>[^\]]+)\]:(?P<bport>[0-9]+|\*)|(?P<plain>[^\s\[\]]*):(?P<port>[0-9]+|\*)")


def endpoint(text: str, line: int) -> tuple[str, str, int]:
    """``addr:port`` as the tools print it ("0.0.0.0:22", "[::]:22", ":::22", "*:80", "127.0.0.53%lo:53",
    "[fe80::1%eth0]:123") -> (address, interface, port)."""
    match = _ENDPOINT.fullmatch(text)
    if match is None:
        raise ReportError(f"{shown(text)} is not an address and port", line)
    address = match["bracketed"] if match["bracketed"] is not None else match["plain"]
    port_text = match["bport"] or match["port"]
    interface = ""
    if "%" in address:
        address, interface = address.split("%", 1)
    if port_text == "*":
        raise ReportError(f"{shown(text)} listens on no port", line)
    port = int(port_text)
    if not 0 < port <= 65535:
        raise ReportError(f"{port} in {shown(text)} is not a port (1-65535)", line)
    return normal_address(address, line), interface, port


def normal_address(address: str, line: int) -> str:
    if address in ("*", ""):
        return "*"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ReportError(f"{shown(address)} is not an IP address", line) from None
    mapped = getattr(ip, "ipv4_mapped", None)
    # As the tools print it (and Python 3.13 does), not "::ffff:7f00:1".
    return f"::ffff:{mapped}" if mapped is not None else str(ip)


def shown(text: str, limit: int = 80) -> str:
    """Some of a report's text, quoted and cut, for an error message (escaped where it is shown)."""
    text = text if len(text) <= limit else text[:limit] + "..."
    return repr(text)


def lines(text: str):
    """(number, line) of the non-blank lines, each at most MAX_LINE long."""
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE:
            raise ReportError(f"{len(line):,} characters: longer than any line these tools print", number)
        if line.strip():
            yield number, line
