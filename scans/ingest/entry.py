"""The entry points: a scan's observations, or an nmap XML file on disk, into the inventory.

The caller holds the transaction (and the lock that makes a second ingest of
the same chunk a no-op). ``ingest`` and ``ingest_file`` do not care how rows
get written: they choose the engine for this database once
(``current_engine``), which diffs and writes batch by batch; after each
batch they settle what the inventory derives from ports (``settle``), and
once everything is written the certificates nmap's ssl-cert saw are handed
on (``certificates_observed``: the certs app compares them with each port's
and may record ``certificate_changed``), and the chunk's changes are
announced once, with ``changes_recorded``, inside the transaction. Either way memory is bounded,
not proportional to the scan.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from django.conf import settings
from django.db import connection

from inventory.choices import PortState
from inventory.models import Zone
from scans.ingest.diff import Coverage
from scans.ingest.engine import Destination, Engine, Written
from scans.ingest.orm import OrmEngine
from scans.ingest.postgres.engine import PostgresEngine
from scans.ingest.settle import refresh_statistics, settle
from scans.merge import merge_duplicates
from scans.models import Change, ScanChunk, ScanRun
from scans.nmap_xml import HostObservation, NmapRunInfo, NmapXmlReader
from scans.signals import certificates_observed, changes_recorded


@dataclass
class IngestSummary:
    hosts_seen: int = 0
    hosts_up: int = 0
    changes: Counter = field(default_factory=Counter)

    @property
    def total_changes(self) -> int:
        return sum(self.changes.values())


def current_engine() -> Engine:
    """Set-based SQL on PostgreSQL (unless INGEST_SQL_ENGINE is off), the ORM engine elsewhere."""
    if connection.vendor == "postgresql" and settings.INGEST_SQL_ENGINE:
        return PostgresEngine()
    return OrmEngine()


def engine_for(run: ScanRun) -> Engine:
    """The inventory's engine for a scan from the zone's home; another vantage point's scan writes its view."""
    if run.from_home:
        return current_engine()
    from reach.engine import ViewEngine  # noqa: PLC0415 - reach builds on this package

    return ViewEngine(run.vantage)


def ingest(
    *,
    run: ScanRun,
    chunk: ScanChunk,
    zone: Zone,
    coverage: Coverage,
    observations: Iterable[HostObservation],
    now: datetime,
    certificates: Iterable[tuple[str, str, int, str]] | None = None,
) -> IngestSummary:
    """Diff and write every observation, then the covered addresses that were silent.

    Must run inside ``transaction.atomic()``: an error part-way (a truncated
    file, say) rolls everything back. An incomplete coverage concludes nothing.

    Observations held in a list (a scan chunk's) are merged per address first
    (``scans.merge``); a stream raises ``HostListedTwice`` at an address it
    lists twice, for the caller to merge (``scans.ingest.imports``).

    ``certificates`` (address, protocol, port, PEM) default to those of the
    observations when they are a list; a caller that streams them passes
    another read of its file (``source_certificates``).
    """
    if not coverage.complete:
        return IngestSummary()
    if isinstance(observations, list | tuple):
        observations = merge_duplicates(observations, coverage.probed)
    batches = engine_for(run).write(Destination(run, chunk, zone, now), coverage, observations)
    if certificates is None:
        # A stream is consumed by the engine: its caller reads the file again.
        certificates = listed_certificates(observations) if isinstance(observations, list | tuple) else ()
    return _settle_and_announce(batches, run, chunk, zone=zone, now=now, certificates=certificates)


def ingest_file(
    *,
    run: ScanRun,
    chunk: ScanChunk,
    zone: Zone,
    path: str,
    now: datetime,
    observed_at: datetime,
    certificates: Iterable[tuple[str, str, int, str]] | None = None,
) -> tuple[IngestSummary, NmapRunInfo]:
    """Diff and write an nmap XML file on disk (on PostgreSQL, parsed in parallel).

    Each batch is settled (policy, host summaries) as soon as it is written,
    while the parser processes work on the next ones: left to the end, that
    work would run on one CPU after the parse is over.

    Raises NmapXmlError (and so rolls back) for a malformed or incomplete file.
    """
    info = NmapRunInfo()
    batches = engine_for(run).write_file(Destination(run, chunk, zone, now), path, info, observed_at)
    if certificates is None:
        certificates = _path_certificates(path)
    summary = _settle_and_announce(batches, run, chunk, zone=zone, now=now, certificates=certificates)
    return summary, info


def listed_certificates(observations: Iterable[HostObservation]) -> Iterator[tuple[str, str, int, str]]:
    """(address, protocol, port, PEM) of every open port ssl-cert gave a certificate."""
    for observation in observations:
        for port in observation.ports:
            if port.certificate and port.state == PortState.OPEN:
                yield observation.address, port.protocol, port.port, port.certificate


def source_certificates(source: BinaryIO) -> Iterator[tuple[str, str, int, str]]:
    """The certificates of an nmap XML file (seekable) the engine has written, read again as a stream.

    Read again rather than carried through the engine, which may parse in
    other processes; a file in which ssl-cert never ran is not parsed again
    (a plain search of its bytes), so ordinary imports pay almost nothing.
    Lazy: nothing is read until the certificates are asked for, after the
    engine is done with the file.
    """
    source.seek(0)
    tail = b""
    while block := source.read(1 << 20):
        if _SSL_CERT in tail + block:
            break
        tail = block[-len(_SSL_CERT) :]
    else:
        return
    source.seek(0)
    yield from listed_certificates(NmapXmlReader(source).entries())


def _path_certificates(path: str) -> Iterator[tuple[str, str, int, str]]:
    with open(path, "rb") as source:
        yield from source_certificates(source)


_SSL_CERT = b'id="ssl-cert"'


def _settle_and_announce(
    batches: Iterator[Written],
    run: ScanRun,
    chunk: ScanChunk,
    *,
    zone: Zone,
    now: datetime,
    certificates: Iterable[tuple[str, str, int, str]] = (),
) -> IngestSummary:
    summary = IngestSummary()
    for written in batches:
        summary.hosts_seen += written.seen
        summary.hosts_up += written.up
        summary.changes.update(written.changes)
        summary.changes.update(settle(chunk, after_change=written.after_change, renamed_hosts=written.renamed_hosts))
    # After every batch: the ports are written, so the certificates find their rows.
    for _, recorded in certificates_observed.send(
        sender=Change, run=run, chunk=chunk, zone=zone, now=now, certificates=certificates
    ):
        summary.changes.update(recorded or {})
    if summary.total_changes:
        # Once the writes are settled: tell whoever listens (alerts).
        refresh_statistics(summary.total_changes)
        changes_recorded.send(sender=Change, run=run, changes=Change.objects.filter(chunk=chunk))
    return summary
