"""Build inventory the way production does: through the diff engine.

``observe(zone, {address: [ports]})`` ingests one completed scan of TCP
ports 1-1024 in which each address answers with the given ports open and
the rest closed, so hosts, services, changes and policy are all written by
the real code path (``scans.ingest.ingest``).
"""

from django.db import transaction
from django.utils import timezone

from inventory.choices import PortState
from inventory.models import Zone
from inventory.ports import PortSet
from scans.choices import ChunkStatus, RunStatus, Trigger
from scans.diff import Coverage
from scans.ingest import ingest
from scans.models import ScanChunk, ScanRun
from scans.nmap_xml import HostObservation, PortObservation

PROBED = {"tcp": PortSet.parse("1-1024")}


def observe(hosts: dict[str, list], zone: Zone | None = None, names: dict | None = None) -> ScanRun:
    """One scan in which each address of ``hosts`` is up with those ports open.

    A port may be a number or (number, service name).
    """
    zone = zone or Zone.default()
    now = timezone.now()
    observations = []
    for address, ports in hosts.items():
        listed = []
        for item in ports:
            number, name = item if isinstance(item, tuple) else (item, (names or {}).get(item, ""))
            listed.append(PortObservation("tcp", number, PortState.OPEN, name=name))
        observations.append(HostObservation(address, True, (), tuple(listed), (("*", PortState.CLOSED, PortSet()),)))
    with transaction.atomic():
        run = ScanRun.objects.create(
            zone=zone, trigger=Trigger.IMPORT, status=RunStatus.SUCCEEDED, created_at=now, started_at=now
        )
        chunk = ScanChunk.objects.create(run=run, index=0, status=ChunkStatus.SUCCEEDED, attempts=1)
        coverage = Coverage(frozenset(hosts), PROBED, complete=True, observed_at=now)
        ingest(run=run, chunk=chunk, zone=zone, coverage=coverage, observations=observations, now=now)
    return run
