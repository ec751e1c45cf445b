"""Import an nmap XML file as a run: the same diff engine as scans.

The file is read inside one transaction: a malformed, truncated or hostile
file raises ``NmapXmlError`` part-way and nothing is written. The run's
coverage comes from the file (the ports nmap says it probed, the hosts it
lists), and its time from nmap's own start time, so an old file imported late
never overrides newer scans. On PostgreSQL a file on disk is parsed by several
processes at once (``scans.ingest_pg``).
"""

from typing import BinaryIO

from django.db import transaction
from django.utils import timezone

from inventory import audit
from scans import ingest_pg
from scans.choices import ChunkStatus, RunStatus, Trigger
from scans.diff import Coverage
from scans.ingest import ingest, ingest_file
from scans.models import ScanChunk, ScanRun
from scans.nmap_xml import NmapRunInfo, NmapXmlReader, read_header


def import_nmap_xml(source: BinaryIO, *, zone, requested_by=None, name: str = "", path: str | None = None) -> ScanRun:
    """Ingest ``source`` (a seekable binary file, at ``path`` if it is on disk)
    into ``zone``; raise NmapXmlError if it is bad."""
    header = read_header(source)
    now = timezone.now()
    observed_at = header.started or now
    with transaction.atomic():
        run = ScanRun.objects.create(
            zone=zone,
            trigger=Trigger.IMPORT,
            status=RunStatus.RUNNING,
            requested_by=requested_by,
            targets=name[:255] or "nmap XML import",
            nmap_options=header.args.split()[1:] if header.args else [],
            created_at=now,
            started_at=now,
        )
        chunk = ScanChunk.objects.create(run=run, index=0, status=ChunkStatus.RUNNING, attempts=1, started_at=now)
        if path is not None and ingest_pg.is_available():
            summary, info = ingest_file(
                run=run, chunk=chunk, zone=zone, path=path, now=observed_at, observed_at=observed_at
            )
        else:
            source.seek(0)
            reader = NmapXmlReader(source)
            # Hosts nmap lists as down are observations too; no address is silent.
            coverage = Coverage(frozenset(), reader.info.probed, complete=True, observed_at=observed_at)
            summary = ingest(
                run=run, chunk=chunk, zone=zone, coverage=coverage, observations=reader.hosts(), now=observed_at
            )
            info: NmapRunInfo = reader.info
        finished = timezone.now()
        chunk.status = ChunkStatus.SUCCEEDED
        chunk.size = summary.hosts_seen
        chunk.hosts_up = summary.hosts_up
        chunk.coverage = {protocol: str(ports) for protocol, ports in info.probed.items()}
        chunk.ingested_at = chunk.finished_at = finished
        chunk.save()
        run.status = RunStatus.SUCCEEDED
        run.hosts_total = run.hosts_done = summary.hosts_seen
        run.hosts_up = summary.hosts_up
        run.finished_at = finished
        run.save(update_fields=["status", "hosts_total", "hosts_done", "hosts_up", "finished_at"])
        audit.record(
            requested_by,
            "import",
            run,
            object_repr=run.targets,
            summary=f"{summary.hosts_seen} host(s), {summary.total_changes} change(s), into zone {zone.name}.",
        )
    return run
