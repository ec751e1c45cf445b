"""Where PortWatch may send outbound requests.

A webhook URL is typed by an admin, but the server it names sits inside the
network PortWatch scans: an outbound request is a way into that network and
to a cloud's metadata service. So:

- link-local (169.254.0.0/16, fe80::/10, which includes the metadata address
  169.254.169.254), known metadata addresses of other clouds, multicast,
  unspecified and reserved addresses are refused always;
- private, loopback, shared (CGNAT) and ULA addresses are refused unless an
  admin allows them on the channel;
- every address a name resolves to is checked, and the request is then made
  to the checked address (pinned), so a second DNS answer cannot change it.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

# Metadata services outside link-local: AWS over IPv6, Alibaba Cloud, Oracle Cloud.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address) for address in ("fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
SHARED_NETWORK = ipaddress.ip_network("100.64.0.0/10")


class AddressRefused(ValueError):
    """The destination is not allowed; the message says why, for the channel's page."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str  # as written in the URL (the Host header and the TLS name)
    port: int
    address: str  # the checked address to connect to
    path: str  # path and query


def check_address(address: str, *, allow_private: bool) -> None:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES or ip.is_link_local:
        raise AddressRefused(f"{ip} is a link-local or cloud-metadata address; PortWatch never sends there.")
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise AddressRefused(f"{ip} is not a unicast address.")
    if (ip.is_private or ip.is_loopback or ip in SHARED_NETWORK) and not allow_private:
        raise AddressRefused(
            f"{ip} is a private or loopback address; an admin must allow private addresses on this channel."
        )
    if not ip.is_global and not (ip.is_private or ip.is_loopback or ip in SHARED_NETWORK):
        raise AddressRefused(f"{ip} is a special-purpose address.")


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise AddressRefused(f"{host} does not resolve: {error.strerror}.") from None
    seen: list[str] = []
    for *_, sockaddr in infos:
        if sockaddr[0] not in seen:
            seen.append(sockaddr[0])
    return seen


def destination(url: str, *, allow_private: bool) -> Destination:
    """Parse and check an http(s) URL; resolve its host and check every address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("The URL must start with http:// or https:// and name a host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressRefused("The URL's port is not a number from 1 to 65535.") from None
    addresses = resolve(parts.hostname, port)
    # All of them: a name that also resolves to a refused address is refused.
    for address in addresses:
        check_address(address, allow_private=allow_private)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Destination(parts.scheme, parts.hostname, port, addresses[0], path)


def check_host(host: str, port: int, *, allow_private: bool) -> None:
    for address in resolve(host, port):
        check_address(address, allow_private=allow_private)


def mask_url(url: str) -> str:
    """scheme://host/… without credentials, path or query (which often carry tokens)."""
    parts = urlsplit(url)
    if not parts.scheme:
        return "(not a URL)"
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    rest = "/…" if (parts.path.strip("/") or parts.query) else ""
    return urlunsplit((parts.scheme, f"{host}{port}", "", "", "")) + rest
