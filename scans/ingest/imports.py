"""Import a scan file as a run: the same diff engine as scans.

nmap XML, masscan XML and masscan JSON are accepted (``scans.scanfiles``
reads which from the document). The file is read inside one transaction: a
malformed, truncated or hostile file raises ``NmapXmlError`` part-way and
nothing is written. The run's time comes from the scanner's own start time,
so an old file imported late never overrides newer scans.

- nmap: the coverage comes from the file (the ports nmap says it probed, the
  hosts it lists). A file on disk goes to the engine as a file
  (``entry.ingest_file``: on PostgreSQL parsed by several processes at
  once), an upload in memory as a stream. If an address turns out to be
  listed twice (nmap scans an address once per target name that resolves to
  it), what was staged is rolled back to a savepoint and the file is read
  again, its repeated addresses merged (``scans.merge``): a file nmap wrote
  is never refused for it, and ordinary files pay nothing for the check.
- masscan: its entries (one per open port or banner) are merged per address,
  and the import concludes only from what masscan heard: ports opened, hosts
  discovered or returned. Its silence says nothing (masscan does not record
  which ports it probed, retries nothing and reports no host down), so the
  coverage is empty: nothing is closed, no host is unreachable, nothing is
  marked stale.
"""

from typing import BinaryIO

from django.db import transaction
from django.utils import timezone

from inventory import audit
from scans.choices import ChunkStatus, RunStatus, Scanner, Trigger
from scans.ingest.diff import Coverage
from scans.ingest.entry import IngestSummary, ingest, ingest_file, source_certificates
from scans.models import ScanChunk, ScanRun
from scans.nmap_xml import HostListedTwice, NmapRunInfo, NmapXmlReader
from scans.scanfiles import ScanFile, merged_hosts, open_scan_file


def import_scan_file(
    source: BinaryIO, *, zone, vantage=None, requested_by=None, name: str = "", path: str | None = None
) -> ScanRun:
    """Ingest ``source`` (a seekable binary file, at ``path`` if it is on disk)
    into ``zone``, as seen from ``vantage`` (default: the zone's home, the
    inventory's view); raise NmapXmlError if it is bad."""
    scan_file = open_scan_file(source)
    merged = None
    if scan_file.is_masscan:
        # Read (and checked) before anything is written; the first pass also
        # finds the time of a JSON file (its earliest record).
        merged = merged_hosts(scan_file)
    header = scan_file.info
    now = timezone.now()
    observed_at = header.started or now
    with transaction.atomic():
        run = ScanRun.objects.create(
            zone=zone,
            vantage=vantage,
            trigger=Trigger.IMPORT,
            scanner=Scanner.MASSCAN if scan_file.is_masscan else Scanner.NMAP,
            status=RunStatus.RUNNING,
            requested_by=requested_by,
            targets=name[:255] or f"{scan_file.label} import",
            nmap_options=header.args.split()[1:] if header.args else [],
            created_at=now,
            started_at=now,
        )
        chunk = ScanChunk.objects.create(run=run, index=0, status=ChunkStatus.RUNNING, attempts=1, started_at=now)
        if merged is not None:
            summary, info = _ingest_masscan(
                run, chunk, zone, scan_file=scan_file, hosts=merged, observed_at=observed_at
            )
        else:
            summary, info = _ingest_nmap(
                run, chunk, zone, source=source, scan_file=scan_file, path=path, observed_at=observed_at
            )
        finished = timezone.now()
        chunk.status = ChunkStatus.SUCCEEDED
        chunk.size = summary.hosts_seen
        chunk.hosts_up = summary.hosts_up
        # What the scanner says it probed, for the run page (masscan writes no port list).
        chunk.coverage = {protocol: str(ports) for protocol, ports in info.probed.items() if ports}
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
            summary=(
                f"{scan_file.label}: {summary.hosts_seen} host(s), {summary.total_changes} change(s), "
                f"into zone {zone.name}{'' if run.from_home else f', as seen from {run.vantage}'}."
            ),
        )
    return run


def _ingest_nmap(
    run, chunk, zone, *, source, scan_file: ScanFile, path, observed_at
) -> tuple[IngestSummary, NmapRunInfo]:
    """Stream the file as it is; if an address is listed twice, roll back and merge."""
    attempt = transaction.savepoint()
    try:
        if path is not None:
            return ingest_file(
                run=run,
                chunk=chunk,
                zone=zone,
                path=path,
                now=observed_at,
                observed_at=observed_at,
                certificates=source_certificates(source),
            )
        source.seek(0)
        reader = NmapXmlReader(source)
        # Hosts nmap lists as down are observations too; no address is silent.
        coverage = Coverage(frozenset(), reader.info.probed, complete=True, observed_at=observed_at)
        summary = ingest(
            run=run,
            chunk=chunk,
            zone=zone,
            coverage=coverage,
            observations=reader.hosts(),
            now=observed_at,
            certificates=source_certificates(source),
        )
        return summary, reader.info
    except HostListedTwice:
        transaction.savepoint_rollback(attempt)
    hosts = merged_hosts(scan_file)
    info = scan_file.info
    coverage = Coverage(frozenset(), info.probed, complete=True, observed_at=observed_at)
    summary = ingest(
        run=run,
        chunk=chunk,
        zone=zone,
        coverage=coverage,
        observations=hosts,
        now=observed_at,
        certificates=source_certificates(source),
    )
    return summary, info


def _ingest_masscan(run, chunk, zone, *, scan_file: ScanFile, hosts, observed_at) -> tuple[IngestSummary, NmapRunInfo]:
    """Only what masscan heard: no probed ports, no silent addresses, so nothing closes."""
    coverage = Coverage(frozenset(), {}, complete=True, observed_at=observed_at)
    summary = ingest(run=run, chunk=chunk, zone=zone, coverage=coverage, observations=hosts, now=observed_at)
    return summary, scan_file.info
