"""A pure, streaming reader of masscan's JSON output: bytes in, one entry per record out.

masscan writes one record per open port and one more per banner, in the order
it hears them, in three shapes this reader accepts (each seen in real output):

- ``-oJ`` since 1.0.4: a JSON array, a record per line, commas *before* each
  record (``[`` ... ``,`` ``{...}`` ... ``]``);
- ``-oJ`` of older versions: no brackets, a comma *after* every record
  (a trailing comma) and a last line ``{finished: 1}``, which is not JSON;
- ``-oD`` (ndjson, 1.3.1 and later): one record per line, nothing around them.

A record is ``{"ip", "timestamp", "ports": [{"port", "proto", "status",
"reason", "ttl"}]}`` or, for a banner, ``{"ip", "timestamp", "ports": [{"port",
"proto", "service": {"name", "banner"}}]}``; ``-oD`` puts the port at the top
level with ``"rec_type": "status"`` or ``"banner"`` and its fields in ``data``
(``service_name`` for the banner's kind).

Files are hostile (uploads), so the reader is bounded like the XML reader:
records are decoded one at a time from a sliding buffer (memory follows the
largest record, at most ``RECORD_MAX_CHARS``, not the file), every field is
checked (address, port number, types), text from the scanned host is cut to a
bounded length with NULs stripped, and an error names the record and its line.
An array that never closes is a truncated file: an error after the last
record, so whoever ingests it rolls back.

masscan's silence concludes nothing, so only what it heard is kept: a record
of any state is an answer (the host is up), an open port or a banner is an
open port, a closed one (``--show closed``) is dropped.
"""

import codecs
import ipaddress
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from inventory.choices import PortState, Protocol
from inventory.constants import PORT_MAX, PORT_MIN
from scans.nmap_xml import MASSCAN, HostObservation, NmapRunInfo, NmapXmlError, PortObservation, masscan_banner

# The largest record (masscan's banners are at most 64 KiB, escaped).
RECORD_MAX_CHARS = 1 << 20
_READ_SIZE = 1 << 16
_PROTOCOLS = frozenset(Protocol.values)
_WHITESPACE = re.compile(r"[ \t\r\n]*")
# The last line of older masscan versions' -oJ: not JSON.
_OLD_END = re.compile(r"\{\s*finished\s*:\s*1\s*\}")


class MasscanJsonError(NmapXmlError):
    """The file is not complete, well-formed masscan JSON output."""


def looks_like_json(source: BinaryIO) -> bool:
    """Does the file start (after a byte order mark and blanks) like JSON: ``[`` or ``{``?"""
    head = source.read(4096)
    source.seek(0)
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    head = head.lstrip(b" \t\r\n")
    return head[:1] in (b"[", b"{")


class MasscanJsonReader:
    """Iterate the entries of one masscan JSON file; ``info`` fills in as it goes.

    Each record is one entry (``HostObservation``), as written: an address
    with several ports or banners is listed several times, for
    ``scans.merge`` to merge. ``info.started`` is the earliest record's
    time, known once every entry has been read.
    """

    def __init__(self, source: BinaryIO):
        self._source = source
        self.info = NmapRunInfo(scanner=MASSCAN, version="", runstats_seen=True, exit_status="success")

    def entries(self) -> Iterator[HostObservation]:
        self._source.seek(0)
        for record, line, number in _records(self._source):
            entry = _read_record(record, line, number, self.info)
            if entry is not None:
                yield entry


def _records(source: BinaryIO) -> Iterator[tuple[object, int, int]]:
    """(record, line, record number) of every record; raises on anything else."""
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buffer, position, line_base = "", 0, 1  # line_base: the file's line at buffer[0]
    at_end = False
    array: bool | None = None  # None until the first token says which shape this is
    closed = False
    number = 0

    def line_at(index: int) -> int:
        return line_base + buffer.count("\n", 0, index)

    while True:
        position = _WHITESPACE.match(buffer, position).end()
        if position >= len(buffer):
            if at_end:
                break
            block = source.read(_READ_SIZE)
            if not block:
                at_end = True
                buffer += text.decode(b"", final=True)
            else:
                buffer += text.decode(block)
            continue
        if position > _READ_SIZE:  # drop what was read
            line_base += buffer.count("\n", 0, position)
            buffer, position = buffer[position:], 0
        if array is None and buffer.startswith("\ufeff", position):
            position += 1
            continue
        char = buffer[position]
        if closed:
            raise MasscanJsonError(
                f"Unexpected {char!r} after the end of masscan's JSON array at line {line_at(position)}."
            )
        if array is None:
            array = char == "["
            if array:
                position += 1
                continue
        if char == ",":
            position += 1  # between records, or after the last one (older versions)
            continue
        if char == "]" and array:
            closed = True
            position += 1
            continue
        if char != "{":
            raise MasscanJsonError(f"This is not masscan JSON output: unexpected {char!r} at line {line_at(position)}.")
        end_marker = _OLD_END.match(buffer, position)
        if end_marker:
            position = end_marker.end()
            continue
        try:
            record, end = decoder.raw_decode(buffer, position)
        except json.JSONDecodeError as error:
            if not at_end and len(buffer) - position <= RECORD_MAX_CHARS:
                block = source.read(_READ_SIZE)  # the record may go on in the next block
                if block:
                    buffer += text.decode(block)
                else:
                    at_end = True
                    buffer += text.decode(b"", final=True)
                continue
            if len(buffer) - position > RECORD_MAX_CHARS:
                raise MasscanJsonError(
                    f"masscan JSON record {number + 1} (line {line_at(position)}) is longer than "
                    f"{RECORD_MAX_CHARS} characters or malformed."
                ) from None
            raise MasscanJsonError(
                f"masscan JSON record {number + 1} is malformed or truncated at line {line_at(error.pos)}, "
                f"column {error.pos - buffer.rfind(chr(10), 0, error.pos)}: {error.msg}."
            ) from None
        number += 1
        if end - position > RECORD_MAX_CHARS:
            raise MasscanJsonError(
                f"masscan JSON record {number} (line {line_at(position)}) is longer than {RECORD_MAX_CHARS} characters."
            )
        yield record, line_at(position), number
        position = end
    if array and not closed:
        raise MasscanJsonError(
            "The file ends before masscan's closing ']': the scan did not finish or the file is truncated."
        )


def _read_record(record: object, line: int, number: int, info: NmapRunInfo) -> HostObservation | None:
    where = f"masscan JSON record {number} (line {line})"
    if not isinstance(record, dict):
        raise MasscanJsonError(f"{where} is not an object.")
    ip = record.get("ip")
    if not isinstance(ip, str):
        raise MasscanJsonError(f'{where} has no "ip": this is not masscan JSON output.')
    try:
        address = str(ipaddress.ip_address(ip))
    except ValueError:
        raise MasscanJsonError(f"{where}: {ip[:60]!r} is not an IP address.") from None
    _note_time(record.get("timestamp"), info)
    if "ports" in record:
        items = record["ports"]
        if not isinstance(items, list):
            raise MasscanJsonError(f'{where}: "ports" is not a list.')
    elif "port" in record:  # -oD: the port at the top level, its fields in "data"
        data = record.get("data")
        if not isinstance(data, dict):
            raise MasscanJsonError(f'{where}: "data" is not an object.')
        item = {"port": record["port"], "proto": record.get("proto")}
        if record.get("rec_type") == "banner":
            item["service"] = {"name": data.get("service_name", ""), "banner": data.get("banner", "")}
        else:
            item["status"] = data.get("status")
        items = [item]
    else:
        items = []  # an answer without a port (say, a ping): the host is up
    ports = []
    for item in items:
        port = _read_port(item, where)
        if port is not None:
            ports.append(port)
    return HostObservation(address, True, (), tuple(ports))


def _read_port(item: object, where: str) -> PortObservation | None:
    if not isinstance(item, dict):
        raise MasscanJsonError(f"{where}: a port is not an object.")
    number = item.get("port")
    if isinstance(number, bool) or not isinstance(number, int):
        raise MasscanJsonError(f"{where}: the port is {str(number)[:20]!r}, not a number.")
    protocol = item.get("proto")
    if protocol not in _PROTOCOLS:
        return None  # ICMP, ARP: an answer, not a port
    if not PORT_MIN <= number <= PORT_MAX:
        raise MasscanJsonError(f"{where}: port {number} is not within {PORT_MIN}-{PORT_MAX}.")
    service = item.get("service")
    if service is not None:
        if not isinstance(service, dict):
            raise MasscanJsonError(f'{where}: "service" is not an object.')
        kind, banner = service.get("name", ""), service.get("banner", "")
        if not isinstance(kind, str) or not isinstance(banner, str):
            raise MasscanJsonError(f"{where}: a banner's name or text is not a string.")
        name, scripts = masscan_banner(kind, banner)
        return PortObservation(protocol, number, PortState.OPEN.value, name, scripts=scripts)
    if item.get("status") != "open":
        return None  # closed (--show closed): an answer, and masscan's closed concludes nothing
    return PortObservation(protocol, number, PortState.OPEN.value)


def _note_time(value: object, info: NmapRunInfo) -> None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return
    try:
        when = datetime.fromtimestamp(int(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return
    if info.started is None or when < info.started:
        info.started = when
    if info.finished is None or when > info.finished:
        info.finished = when
