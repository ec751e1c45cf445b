"""Where a port rule lets its ports listen (``PortRule.listen_on``): "loopback" and networks.

Pure: parsed and checked here, judged against the hosts' own reports by
``listeners.findings``. A socket on every interface (0.0.0.0, ::, *) listens
on every network: only a rule that names none (empty) allows it.
"""

import ipaddress

LOOPBACK = "loopback"


class BindSpecError(ValueError):
    pass


def parse(text: str) -> list[str]:
    """ "loopback, 10.1.0.0/16" -> ["loopback", "10.1.0.0/16"] (normalised); BindSpecError names a bad item."""
    items = []
    for raw in text.replace(";", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        if item.lower() == LOOPBACK:
            item = LOOPBACK
        else:
            try:
                item = str(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise BindSpecError(f"{item!r} is neither “loopback” nor a network (10.1.0.0/16, fd00::/64)") from None
        if item not in items:
            items.append(item)
    return items


def normalised(text: str) -> str:
    return ", ".join(parse(text))


def allows(listen_on: str, address: str) -> bool:
    """Whether a socket bound to ``address`` ("*" or an IP) may listen where ``listen_on`` says."""
    allowed = parse(listen_on)
    if not allowed:
        return True
    if address == "*":
        return False
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    ip = mapped or ip
    if ip.is_unspecified:
        return False
    if ip.is_loopback:
        return LOOPBACK in allowed or any(ip in ipaddress.ip_network(item) for item in allowed if item != LOOPBACK)
    return any(
        ip.version == network.version and ip in network
        for network in (ipaddress.ip_network(item) for item in allowed if item != LOOPBACK)
    )
