"""Scan files PortWatch imports, whatever wrote them: nmap XML, masscan XML, masscan JSON.

The format is read from the document itself: a file that starts with ``[``
or ``{`` is masscan JSON (``-oJ``, ``-oD``, see ``scans.masscan_json``);
anything else is XML, and ``<nmaprun scanner="masscan">`` says masscan wrote
it (``scans.nmap_xml``). Anything else is refused with the reason.

``open_scan_file`` gives the file's run information and a way to read its
entries again from the start; ``merged_hosts`` reads them twice to merge an
address listed more than once (``scans.merge``): the first pass counts the
repeated addresses, the second streams the others as it reads them and holds
only the repeated ones until their last entry.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from scans.masscan_json import MasscanJsonReader, looks_like_json
from scans.merge import merge_listed, repeated_addresses
from scans.nmap_xml import MASSCAN, HostObservation, NmapRunInfo, NmapXmlReader, read_header

XML, JSON = "xml", "json"


@dataclass
class ScanFile:
    """One scan file: its format, what it says of the run, and its entries."""

    format: str
    info: NmapRunInfo
    _entries: Callable[[], Iterator[HostObservation]]

    @property
    def scanner(self) -> str:
        return self.info.scanner

    @property
    def is_masscan(self) -> bool:
        return self.info.scanner == MASSCAN

    @property
    def label(self) -> str:
        return f"{self.scanner} {'JSON' if self.format == JSON else 'XML'}"

    def entries(self) -> Iterator[HostObservation]:
        """Every entry from the start of the file, as written (an address may repeat)."""
        return self._entries()


def open_scan_file(source: BinaryIO) -> ScanFile:
    """Read the header of ``source`` (seekable): NmapXmlError if it is no scan file PortWatch reads."""
    if looks_like_json(source):
        reader = MasscanJsonReader(source)
        return ScanFile(JSON, reader.info, reader.entries)
    header = read_header(source)
    scan_file = ScanFile(XML, header, lambda: _xml_entries(source, scan_file))
    return scan_file


def _xml_entries(source: BinaryIO, scan_file: ScanFile) -> Iterator[HostObservation]:
    source.seek(0)
    reader = NmapXmlReader(source)
    scan_file.info = reader.info  # filled in as the file is read
    yield from reader.entries()


def merged_hosts(scan_file: ScanFile) -> Iterator[HostObservation]:
    """Each address once, its entries merged; two passes over the file, memory bounded by the repeated addresses.

    The first pass also completes the run information (masscan JSON's time
    is its earliest record's); errors in the file raise there, before any
    host is yielded.
    """
    repeated = repeated_addresses(scan_file.entries())
    probed = scan_file.info.probed
    return merge_listed(scan_file.entries(), repeated, probed)
