"""Build inventory the way production does: through the diff engine.

``observe(zone, {address: [ports]})`` ingests one completed scan of TCP
ports 1-1024 in which each address answers with the given ports open and
the rest closed, so hosts, services, changes and policy are all written by
the real code path (``scans.ingest.entry.ingest``). ``scan(vantage, {address:
{port: state}})`` does the same from a vantage point (None: the zone's home),
with each port's state given.
"""

from django.db import transaction
from django.utils import timezone

from inventory.choices import PortState
from inventory.models import Zone
from inventory.ports import PortSet
from scans.choices import ChunkStatus, RunStatus, Trigger
from scans.ingest.diff import Coverage
from scans.ingest.entry import ingest
from scans.models import ScanChunk, ScanRun
from scans.nmap_xml import HostObservation, PortObservation

PROBED = {"tcp": PortSet.parse("1-1024")}


def observe(
    hosts: dict[str, list], zone: Zone | None = None, names: dict | None = None, hostnames: dict | None = None
) -> ScanRun:
    """One scan in which each address of ``hosts`` is up with those ports open.

    A port may be a number, (number, service name) or (number, service name, product).
    """
    zone = zone or Zone.default()
    now = timezone.now()
    observations = []
    for address, ports in hosts.items():
        listed = []
        for item in ports:
            number, name, product = (*item, "")[:3] if isinstance(item, tuple) else (item, "", "")
            name = name or (names or {}).get(number, "")
            listed.append(PortObservation("tcp", number, PortState.OPEN, name=name, product=product))
        names_of_host = tuple((hostnames or {}).get(address, ()))
        closed = (("*", PortState.CLOSED, PortSet()),)
        observations.append(HostObservation(address, True, names_of_host, tuple(listed), closed))
    with transaction.atomic():
        run = ScanRun.objects.create(
            zone=zone, trigger=Trigger.IMPORT, status=RunStatus.SUCCEEDED, created_at=now, started_at=now
        )
        chunk = ScanChunk.objects.create(run=run, index=0, status=ChunkStatus.SUCCEEDED, attempts=1)
        coverage = Coverage(frozenset(hosts), PROBED, complete=True, observed_at=now)
        ingest(run=run, chunk=chunk, zone=zone, coverage=coverage, observations=observations, now=now)
    return run


def scan(vantage, hosts: dict, *, silent=(), complete=True, probed=PROBED, zone=None, at=None) -> ScanRun:
    """One scan from ``vantage`` (None: the zone's home): ``hosts`` maps address -> {port: state}, the rest closed.

    ``silent`` addresses were covered and did not answer.
    """
    zone = zone or Zone.default()
    now = at or timezone.now()
    observations = [
        HostObservation(
            address,
            True,
            (),
            tuple(PortObservation("tcp", port, state) for port, state in ports.items()),
            (("*", PortState.CLOSED, PortSet()),),
        )
        for address, ports in hosts.items()
    ]
    with transaction.atomic():
        run = ScanRun.objects.create(
            zone=zone, vantage=vantage, trigger=Trigger.IMPORT, status=RunStatus.SUCCEEDED, created_at=now
        )
        chunk = ScanChunk.objects.create(run=run, index=0, status=ChunkStatus.SUCCEEDED, attempts=1)
        coverage = Coverage(frozenset([*hosts, *silent]), probed, complete=complete, observed_at=now)
        ingest(run=run, chunk=chunk, zone=zone, coverage=coverage, observations=observations, now=now)
    return run
