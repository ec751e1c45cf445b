"""A report on its way in (the upload page, the API, the command): its host found, its bytes read.

Everything that can be wrong with a report is found here, before anything
is written: a host not in the inventory, an address in several zones, a
file too large, text that is not one of the formats.
"""

import ipaddress
from datetime import datetime

from django.conf import settings

from inventory.models import Host, Zone
from listeners.parsing import ParsedReport, ReportError, decode, parse


class HostNotFound(ValueError):
    pass


def find_host(address: str, zone: str | None = None) -> Host:
    """The inventory's host at ``address`` (in ``zone``, by name, when the address is in several)."""
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        raise HostNotFound(f"{address!r} is not an IP address.") from None
    hosts = Host.objects.filter(address=address).select_related("zone")
    if zone:
        if not Zone.objects.filter(name=zone).exists():
            raise HostNotFound(f"No zone is named {zone!r}.")
        hosts = hosts.filter(zone__name=zone)
    found = list(hosts[:2])
    if not found:
        where = f" in zone {zone}" if zone else ""
        raise HostNotFound(f"No host {address}{where} in the inventory: a host report is for a host a scan has found.")
    if len(found) > 1:
        zones = ", ".join(sorted(host.zone.name for host in hosts))
        raise HostNotFound(f"{address} is a host in several zones ({zones}): name the zone.")
    return found[0]


def read(data: bytes, format: str | None = None, *, taken_at: datetime | None = None) -> ParsedReport:
    """Bytes of a report -> its sockets, or ReportError. ``taken_at``: when the host took it, if the sender says."""
    if len(data) > settings.LISTENER_REPORT_MAX_BYTES:
        raise ReportError(
            f"{len(data) / 1048576:.1f} MB: host reports are limited to "
            f"{settings.LISTENER_REPORT_MAX_BYTES / 1048576:.0f} MB (LISTENER_REPORT_MAX_BYTES)"
        )
    report = parse(decode(data), format or None)
    if taken_at is not None and report.taken_at is None:
        report.taken_at = taken_at
    return report
