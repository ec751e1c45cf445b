"""The search box of the host and port lists: one field, read the way a person means it.

- ``10.0.0.5`` or ``::1``: that address;
- ``10.0.0.0/24``: every address in the network;
- ``6379`` or ``6379/tcp``: that port, open;
- anything else: hostname, service name or product containing the text.
"""

import ipaddress
import re
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q

from inventory.choices import PortState
from inventory.constants import PORT_MAX, PORT_MIN
from inventory.models import Host, Service

_PORT = re.compile(r"^(\d{1,5})(?:/(tcp|udp|sctp))?$", re.IGNORECASE)
MAX_QUERY_LENGTH = 200


@dataclass(frozen=True)
class Query:
    address: str = ""
    network: str = ""
    port: int | None = None
    protocol: str = ""
    text: str = ""


def parse(value: str) -> Query:
    value = value.strip()[:MAX_QUERY_LENGTH]
    if not value:
        return Query()
    try:
        return Query(address=str(ipaddress.ip_address(value)))
    except ValueError:
        pass
    if "/" in value and not _PORT.match(value):
        try:
            return Query(network=str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            pass
    match = _PORT.match(value)
    if match and PORT_MIN <= int(match.group(1)) <= PORT_MAX:
        return Query(port=int(match.group(1)), protocol=(match.group(2) or "").lower())
    return Query(text=value)


def host_condition(query: Query, prefix: str = "") -> Q:
    """A condition on hosts (``prefix`` = "host__" when filtering ports)."""
    if query.address:
        return Q(**{f"{prefix}address": query.address})
    if query.network:
        return Q(**{f"{prefix}address__in_cidr": query.network})
    return Q()


# Hostname matches considered by a text search (the search box is for finding
# things, not for listing a whole fleet by a common substring).
MAX_HOSTNAME_MATCHES = 2000


def _hosts_named(text: str) -> list[int]:
    return list(Host.objects.filter(hostnames__icontains=text).values_list("pk", flat=True)[:MAX_HOSTNAME_MATCHES])


def _text_condition(text: str) -> Q:
    # Both served by indexes on PostgreSQL (inventory migration 0013).
    return Q(name__iexact=text) | Q(product__icontains=text)


def filter_hosts(queryset, query: Query):
    if query.address or query.network:
        return queryset.filter(host_condition(query))
    if query.port is not None:
        ports = Service.objects.filter(host_id=OuterRef("pk"), port=query.port, state=PortState.OPEN)
        if query.protocol:
            ports = ports.filter(protocol=query.protocol)
        return queryset.filter(Exists(ports))
    if query.text:
        services = Service.objects.filter(_text_condition(query.text), state=PortState.OPEN)
        named = _hosts_named(query.text)
        # An OR of the two makes PostgreSQL walk the whole list in its order,
        # testing each host against both (half a second at 1M hosts), so
        # each side alone when the other finds nothing, which is the usual
        # case: a hostname, or a product.
        if not named:
            return queryset.filter(pk__in=services.values("host_id"))
        if not services.exists():
            return queryset.filter(pk__in=named)
        return queryset.filter(Q(pk__in=named) | Q(pk__in=services.values("host_id")))
    return queryset


def filter_services(queryset, query: Query):
    if query.address or query.network:
        return queryset.filter(host_condition(query, "host__"))
    if query.port is not None:
        queryset = queryset.filter(port=query.port)
        return queryset.filter(protocol=query.protocol) if query.protocol else queryset
    if query.text:
        named = _hosts_named(query.text)
        if not named:
            return queryset.filter(_text_condition(query.text))
        if not queryset.filter(_text_condition(query.text)).exists():
            return queryset.filter(host_id__in=named)
        return queryset.filter(_text_condition(query.text) | Q(host_id__in=named))
    return queryset
