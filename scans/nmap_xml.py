"""A pure, streaming reader of nmap XML: bytes in, named tuples out.

Nothing here touches the database. Files may be hostile (uploads), so:

- the prolog (everything before the root element, where a DTD and entity
  declarations can only live) is read by defusedxml's parser, which refuses
  entity declarations and external references; real nmap files, which carry a
  bare ``<!DOCTYPE nmaprun>``, pass;
- the body is then streamed by the C ElementTree parser, one ``<host>`` at a
  time, and each host is dropped once read, so memory does not grow with the
  file, whatever its line structure or encoding (the C parser is about twice
  as fast as a pure-Python one, and an entity it has not seen declared is an
  error to it);
- every attribute is checked (addresses, port numbers, states) and text from
  the scanned host is cut to a bounded length.

A file that ends before nmap's ``<runstats>`` did not finish: the reader raises
after the last host, so that whoever ingests it can roll back.

masscan writes the same format (``<nmaprun scanner="masscan">``), read from
the document itself: one ``<host>`` per open port or banner, no ``<status>``
(a record is an answer, so its host is up), no port list in ``<scaninfo>``.
Only open ports are kept (``--show closed`` records are answers too, but
masscan's silence and its closed ports conclude nothing in PortWatch); a
banner becomes the script output ``masscan-<name>``. Its entries are merged
per address by ``scans.merge``; ``hosts()`` refuses an address listed twice
(``HostListedTwice``) for callers that cannot merge, ``entries()`` gives
every entry as written.

Large files can be read in parallel: ``fragments()`` cuts the body before a
``<host`` tag at the start of a line, and ``read_fragment()`` parses one
piece, closed with the root's own tags. A cut that fell inside a comment or
CDATA section (nmap writes neither among its hosts) leaves a piece
unterminated, which is an error, so a crafted file can make the read fail but
never make it read differently. Error positions are lines of the whole file.

Speed (measured on a 65,536-host, 655k-port scan, by instruction counts,
which unlike timings do not depend on what else the machine is doing):

- expat's tokenizer is about 30% of a host's cost, building the C
  ElementTree elements another 35%, the Python that reads them the rest. So
  the reading is a single walk of each host's children by tag, with the few
  Python calls per port a walk needs (``_read_host``): named tuples are built
  from a ready tuple, a dotted-quad IPv4 address that ipaddress would write
  back unchanged skips ipaddress. About 10% fewer instructions than a walk
  through helper functions.
- parsing batches of whole hosts as small documents of their own, instead
  of a pull parser's events, was tried and not taken: no faster in CPU time,
  and a file without a ``<host`` at the start of a line (one long line, a
  ``<host>`` without attributes, UTF-16) would have been one batch, held
  whole in memory.
- lxml was measured and not taken: its parse and tree build are about 20%
  cheaper than expat's, but every element or attribute Python touches is a
  proxy object built on demand, so a complete read costs about 20% more than
  with ElementTree; XPath or XSLT extraction of the ports costs more than it
  saves (an XPath call per host is some 100k instructions). It would also
  change the text of the malformed-XML errors users see (libxml2's words and
  positions, not expat's).
"""

import ipaddress
import itertools
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import BinaryIO, NamedTuple

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from inventory.choices import PortState, Protocol
from inventory.constants import HOSTNAME_MAX_LENGTH, PORT_MAX, PORT_MIN, SERVICE_TEXT_MAX_LENGTH
from inventory.ports import PortSet, PortSpecError
from scans.constants import CERTIFICATE_PEM_MAX, SCRIPT_OUTPUT_MAX

# nmap's state words, folded into what PortWatch believes (see PortState);
# plain strings, which are cheaper than enum members on this hot path.
_STATE = {
    "open": PortState.OPEN.value,
    "closed": PortState.CLOSED.value,
    "filtered": PortState.FILTERED.value,
    "open|filtered": PortState.FILTERED.value,
    "closed|filtered": PortState.FILTERED.value,
    "unfiltered": None,  # ACK scans: says nothing about open or closed
}
_PROTOCOLS = frozenset(Protocol.values)
# Not a state word: an error (``None`` in _STATE means "says nothing").
_UNKNOWN = object()
# Elements outside the hosts that say something about the run.
_RUN_TAGS = frozenset(("scaninfo", "finished", "hosts", "runstats"))
_PROLOG_LIMIT = 1 << 20
# Small blocks keep the parser's working set in the CPU cache: 16 KiB reads
# parse a large file about twice as fast as 1 MiB reads.
_READ_SIZE = 1 << 14
# The root's tags, around a fragment that lacks them.
_ROOT_OPEN = b"<nmaprun>"
_ROOT_CLOSE = b"\n</nmaprun>"
# Where a fragment may start: a host element at the start of a line.
_HOST_START = b"\n<host "
# A dotted-quad IPv4 address without leading zeros: ipaddress would accept
# it and write it back unchanged, so it needs no ipaddress object.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PLAIN_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}").fullmatch
_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)["']""")
# Any protocol: the state of every probed port nmap did not list.
ALL_PROTOCOLS = "*"
# <nmaprun scanner=...> of masscan's XML.
MASSCAN = "masscan"
# masscan's banner kinds that annotate a service rather than name it.
MASSCAN_ANNOTATIONS = frozenset(
    ("X509", "title", "html", "vuln", "heartbleed", "ticketbleed", "safe", "scripting", "versioning", "unknown")
)


class NmapXmlError(ValueError):
    """The file is not a complete, well-formed nmap XML document."""


class HostListedTwice(NmapXmlError):
    """An address appears twice where the reader cannot merge: the caller merges (``scans.merge``)."""

    def __init__(self, address: str):
        super().__init__(f"The host {address} is listed twice.")
        self.address = address


class PortObservation(NamedTuple):
    protocol: str
    port: int
    state: str
    name: str = ""
    product: str = ""
    version: str = ""
    extrainfo: str = ""
    # True when version detection (-sV) identified the service; otherwise the
    # name is nmap's guess from the port number.
    identified: bool = False
    # (script id, output) of the NSE scripts that ran on the port.
    scripts: tuple[tuple[str, str], ...] = ()
    # The PEM certificate of ssl-cert's structured output (``<elem
    # key="pem">``), bounded; "" when the script did not run or gave none.
    # Parsed by ``certs.parsing``, not here: the reader stays cheap.
    certificate: str = ""


# A PortObservation from a tuple of all its fields, without the named tuple's
# keyword-handling __new__ (a Python call per port).
_new_port = partial(tuple.__new__, PortObservation)


class HostObservation(NamedTuple):
    address: str
    up: bool
    hostnames: tuple[str, ...] = ()
    ports: tuple[PortObservation, ...] = ()
    # State of the probed ports nmap did not list one by one: (protocol,
    # state, ports), where protocol "*" with an empty port set means "every
    # unlisted probed port" (nmap summarised them all in one state). Missing:
    # unknown, so not observed.
    other_ports: tuple[tuple[str, str, PortSet], ...] = ()
    # nmap gave up on the host (--host-timeout): its port list is partial.
    timed_out: bool = False


@dataclass
class NmapRunInfo:
    """What the document says about the run as a whole."""

    args: str = ""
    version: str = ""
    # Who wrote the file: "nmap" or "masscan" (<nmaprun scanner>).
    scanner: str = "nmap"
    started: datetime | None = None
    # Protocol -> ports nmap says it probed (from <scaninfo>).
    probed: dict[str, PortSet] = field(default_factory=dict)
    finished: datetime | None = None
    exit_status: str = ""
    error_message: str = ""
    hosts_up: int = 0
    hosts_down: int = 0
    runstats_seen: bool = False

    def merge(self, other: "NmapRunInfo") -> None:
        """Fold in what another fragment of the same file found."""
        for protocol, ports in other.probed.items():
            self.probed[protocol] = self.probed.get(protocol, PortSet()) | ports
        if other.runstats_seen:
            self.runstats_seen = True
            self.finished, self.exit_status, self.error_message = (
                other.finished,
                other.exit_status,
                other.error_message,
            )
            self.hosts_up, self.hosts_down = other.hosts_up, other.hosts_down

    def check_complete(self) -> None:
        """Raise unless nmap finished the run and said so."""
        if not self.runstats_seen or self.finished is None:
            raise NmapXmlError(
                "The file ends before nmap's run statistics (<runstats>): the scan did not finish "
                "or the file is truncated."
            )
        if self.exit_status != "success":
            detail = self.error_message or self.exit_status
            raise NmapXmlError(f"nmap reports that the scan did not complete: {detail}")


class NmapXmlReader:
    """Iterate the hosts of one nmap XML file; ``info`` fills in as it goes.

    Opening the reader parses up to the first host, so ``info.probed`` (nmap
    writes ``<scaninfo>`` first) is known before any host is diffed. ``info``
    may be given (a new one), for a caller that holds it already. The end
    of the file is checked after the last host: a truncated file, or one in
    which nmap reports an error, raises ``NmapXmlError`` there.
    """

    def __init__(self, source: BinaryIO, info: NmapRunInfo | None = None):
        self._source = source
        self.info = NmapRunInfo() if info is None else info
        _read_root(check_prolog(source), self.info)
        source.seek(0)
        self._pending = self._parse()
        self._first = next(self._pending, None)

    def entries(self) -> Iterator[HostObservation]:
        """Every ``<host>`` as written, an address listed twice included."""
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._pending

    def hosts(self) -> Iterator[HostObservation]:
        """The hosts, raising ``HostListedTwice`` at an address listed twice."""
        return unique_hosts(self.entries())

    def _parse(self) -> Iterator[HostObservation]:
        yield from _parse(_blocks(self._source), self.info)
        self.info.check_complete()


def read_header(source: BinaryIO) -> NmapRunInfo:
    """Check the prolog and read the root's attributes (nmap's start time, arguments)."""
    info = NmapRunInfo()
    _read_root(check_prolog(source), info)
    source.seek(0)
    return info


def check_prolog(source: BinaryIO) -> tuple[str, dict]:
    """Read up to the root element with defusedxml; return its tag and attributes."""
    parser = DefusedXMLParser(target=_StopAtRoot(), forbid_dtd=False, forbid_entities=True, forbid_external=True)
    read = 0
    try:
        while read < _PROLOG_LIMIT:
            block = source.read(1 << 16)
            if not block:
                raise NmapXmlError("The file is empty or has no root element.")
            read += len(block)
            parser.feed(block)
    except _RootReached as root:
        tag, attrib = root.args
        if tag != "nmaprun":
            raise NmapXmlError(f"This is not an nmap XML file: the root element is <{tag}>, not <nmaprun>.") from None
        return tag, attrib
    except DefusedXmlException as error:
        raise NmapXmlError(
            f"The file declares XML entities or external references ({type(error).__name__}); "
            "nmap never writes those, so it is refused."
        ) from None
    except ET.ParseError as error:
        line, column = error.position
        raise NmapXmlError(f"The XML is malformed at line {line}, column {column}: {_reason(error)}.") from None
    raise NmapXmlError("The file has no root element within its first megabyte.")


# --- parallel reading of large files --------------------------------------------


@dataclass(frozen=True)
class Fragment:
    start: int
    end: int
    first: bool
    last: bool


def fragments(path: str, parts: int) -> list[Fragment]:
    """Cut the file into about ``parts`` pieces, each starting at a ``<host`` line.

    Only UTF-8 files are cut (a fragment has no XML declaration of its own);
    anything else, or a file too small to share, is one fragment.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as source:
        head = source.read(256)
        encoding = _ENCODING.match(head)
        if (
            parts < 2
            or (encoding and encoding.group(1).lower() not in (b"utf-8", b"utf8"))
            or head[:2]
            in (
                b"\xff\xfe",
                b"\xfe\xff",
            )
        ):
            return [Fragment(0, size, True, True)]
        cuts = [0]
        for index in range(1, parts):
            source.seek(max(size * index // parts, cuts[-1] + 1))
            window = source.read(1 << 20)
            found = window.find(_HOST_START)
            if found < 0:
                break
            cut = source.tell() - len(window) + found + 1  # after the newline
            if cut > cuts[-1]:
                cuts.append(cut)
    cuts.append(size)
    return [Fragment(cuts[i], cuts[i + 1], i == 0, i == len(cuts) - 2) for i in range(len(cuts) - 1)]


def read_fragment(path: str, fragment: Fragment, info: NmapRunInfo) -> Iterator[HostObservation]:
    """Hosts of one fragment; ``info`` gets what the fragment says of the run.

    The first fragment carries the prolog (checked with defusedxml); the
    others are read as if the root's own tags surrounded them. Each is parsed
    to its end, so a cut in the wrong place fails.
    """
    with open(path, "rb") as source:
        if fragment.first:
            _read_root(check_prolog(source), info)
            source.seek(0)
        else:
            source.seek(fragment.start)
        blocks = _limited_blocks(source, fragment.end - fragment.start)
        prefix = b"" if fragment.first else _ROOT_OPEN
        if prefix:
            blocks = itertools.chain((prefix,), blocks)
        if not fragment.last:
            blocks = itertools.chain(blocks, (_ROOT_CLOSE,))

        def position(line: int, column: int) -> tuple[int, int]:
            # A fragment starts after a newline: its line 1 is the file's line
            # after the ones before it (counted only for an error's position).
            return line + _count_lines(path, fragment.start), column - len(prefix) if line == 1 else column

        yield from unique_hosts(_parse(blocks, info, position=position))


# --- parsing ------------------------------------------------------------------------


def _parse(
    blocks: Iterator[bytes],
    info: NmapRunInfo,
    *,
    position: Callable[[int, int], tuple[int, int]] = lambda line, column: (line, column),
) -> Iterator[HostObservation]:
    """Hosts of a document (or a fragment put between the root's tags), streamed.

    A pull parser holds one ``<host>`` at a time, whatever the file's size,
    line structure or encoding. ``position`` maps where the parser failed to
    the line and column of the file, for a fragment.
    """
    # The C parser: the prolog, the only place entities can be declared,
    # passed defusedxml (check_prolog); see the module docstring.
    parser = ET.XMLPullParser(events=("end",))
    read_host = _read_masscan_host if info.scanner == MASSCAN else _read_host
    try:
        for block in blocks:
            parser.feed(block)
            for _, element in parser.read_events():
                tag = element.tag
                if tag == "host":
                    yield read_host(element)
                    element.clear()
                elif tag in _RUN_TAGS:
                    _read_run_tag(element, info)
                # else: an element inside a host (most events), read with it
        parser.close()
    except ET.ParseError as error:
        line, column = position(*error.position)
        raise NmapXmlError(
            f"The XML is malformed or truncated at line {line}, column {column}: {_reason(error)}."
        ) from None


def listed_twice(address: str) -> HostListedTwice:
    return HostListedTwice(address)


def unique_hosts(observations: Iterable[HostObservation]) -> Iterator[HostObservation]:
    """The observations, raising ``HostListedTwice`` at a host listed twice (whatever produced them)."""
    addresses: set[str] = set()
    for observation in observations:
        if observation.address in addresses:
            raise listed_twice(observation.address)
        addresses.add(observation.address)
        yield observation


def _read_run_tag(element, info: NmapRunInfo) -> None:
    tag = element.tag
    if tag == "scaninfo":
        _read_scaninfo(element, info)
    elif tag == "finished":
        _read_finished(element, info)
    elif tag == "hosts":
        info.hosts_up = _int(element.get("up", "0"), "hosts up")
        info.hosts_down = _int(element.get("down", "0"), "hosts down")
    elif tag == "runstats":
        info.runstats_seen = True


def _count_lines(path: str, end: int) -> int:
    """Lines of the file before byte ``end``."""
    with open(path, "rb") as source:
        return sum(block.count(b"\n") for block in _limited_blocks(source, end))


def _blocks(source: BinaryIO) -> Iterator[bytes]:
    while block := source.read(_READ_SIZE):
        yield block


def _limited_blocks(source: BinaryIO, length: int) -> Iterator[bytes]:
    while length > 0:
        block = source.read(min(_READ_SIZE, length))
        if not block:
            return
        length -= len(block)
        yield block


def _read_root(root: tuple[str, dict], info: NmapRunInfo) -> None:
    _, attrib = root
    info.scanner = MASSCAN if attrib.get("scanner") == MASSCAN else "nmap"
    info.args = attrib.get("args", "")[:2000]
    info.version = attrib.get("version", "")[:32]
    info.started = _timestamp(attrib.get("start"))


def _read_scaninfo(element, info: NmapRunInfo) -> None:
    protocol = element.get("protocol", "")
    if protocol not in _PROTOCOLS:
        return
    try:
        ports = PortSet.from_nmap(element.get("services", ""))
    except PortSpecError as error:
        raise NmapXmlError(f"<scaninfo services> is not a port list: {error}") from None
    info.probed[protocol] = info.probed.get(protocol, PortSet()) | ports


def _read_finished(element, info: NmapRunInfo) -> None:
    info.finished = _timestamp(element.get("time"))
    info.exit_status = element.get("exit", "success")
    info.error_message = element.get("errormsg", "")[:2000]


class _RootReached(Exception):
    pass


class _StopAtRoot:
    """A parser target that stops the prolog check at the root element."""

    def start(self, tag, attrib):
        raise _RootReached(tag, dict(attrib))

    def end(self, tag):
        pass

    def data(self, data):
        pass

    def close(self):
        return None


def _read_host(element) -> HostObservation:
    # Hot path (once per host, and its loop once per port): see "Speed" in the
    # module docstring. The checks, and the order in which they raise, are
    # those of a plain walk: children first (a bad address raises there), then
    # the address, then each port in turn, then duplicates, then summaries.
    address = None
    up = False
    hostnames: tuple[str, ...] = ()
    ports = []
    extraports = []
    for child in element:
        tag = child.tag
        if tag == "address":
            if address is None and child.get("addrtype") in ("ipv4", "ipv6"):
                address = _address(child.get("addr", ""))
        elif tag == "status":
            up = child.get("state") == "up"
        elif tag == "hostnames":
            hostnames = (
                tuple(
                    dict.fromkeys(
                        _text(name.get("name", ""), HOSTNAME_MAX_LENGTH) for name in child if name.get("name")
                    )
                )
                if len(child)
                else ()
            )
        elif tag == "ports":
            for item in child:
                tag = item.tag
                if tag == "port":
                    ports.append(item)
                elif tag == "extraports":
                    extraports.append(item)
    if address is None:
        raise NmapXmlError("A <host> has no IPv4 or IPv6 address.")
    observations = []
    for port in ports:
        protocol = port.get("protocol", "")
        if protocol not in _PROTOCOLS:
            continue  # IP protocol scans (-sO) say nothing about ports
        portid = port.get("portid", "")
        number = int(portid) if portid.isdigit() else _int(portid, f"portid of {address}")
        if not PORT_MIN <= number <= PORT_MAX:
            raise NmapXmlError(f"portid {number} of {address} is not within {PORT_MIN}-{PORT_MAX}.")
        raw_state = ""
        service = None
        scripts = None
        certificate = ""
        for child in port:
            tag = child.tag
            if tag == "state":
                raw_state = child.get("state", "")
            elif tag == "service":
                service = child
            elif tag == "script" and child.get("id"):
                if scripts is None:
                    scripts = []
                scripts.append((_text(child.get("id"), 64), _text(child.get("output", ""), SCRIPT_OUTPUT_MAX)))
                if child.get("id") == "ssl-cert":
                    certificate = _certificate_pem(child)
        state = _STATE.get(raw_state, _UNKNOWN)
        if state is None:
            continue  # unfiltered: says nothing about open or closed
        if state is _UNKNOWN:
            raise NmapXmlError(f"Port {number}/{protocol} of {address} has an unknown state {raw_state[:20]!r}.")
        if service is None:
            observations.append(
                _new_port((protocol, number, state, "", "", "", "", False, tuple(scripts or ()), certificate))
            )
            continue
        attributes = service.attrib
        name = attributes.get("name", "")
        product = attributes.get("product")
        version = attributes.get("version")
        extrainfo = attributes.get("extrainfo")
        observations.append(
            _new_port(
                (
                    protocol,
                    number,
                    state,
                    _text(name, 64) if name else "",
                    _text(product, SERVICE_TEXT_MAX_LENGTH) if product else "",
                    _text(version, SERVICE_TEXT_MAX_LENGTH) if version else "",
                    _text(extrainfo, SERVICE_TEXT_MAX_LENGTH) if extrainfo else "",
                    attributes.get("method") == "probed",
                    tuple(scripts) if scripts else (),
                    certificate,
                )
            )
        )
    if len({(port.protocol, port.port) for port in observations}) != len(observations):
        raise NmapXmlError(f"A port of {address} is listed twice.")
    return HostObservation(
        address,
        up,
        hostnames,
        tuple(observations),
        _read_extraports(extraports),
        element.get("timedout") == "true",
    )


def _read_masscan_host(element) -> HostObservation:
    """One masscan record: an address and one port (open, or a banner of an open port).

    masscan writes no ``<status>``: any record is an answer, so the host is
    up. Closed ports (``--show closed``) and other protocols (ICMP, ARP) say
    only that. A banner's kind names the service unless it only annotates it
    (a title, a certificate); the banner itself is kept as script output.
    """
    address = None
    ports = []
    for child in element:
        if child.tag == "address" and address is None:
            # masscan writes addrtype="ipv4" for IPv6 addresses too: the address says which.
            address = _address(child.get("addr", ""))
        elif child.tag == "ports":
            ports.extend(item for item in child if item.tag == "port")
    if address is None:
        raise NmapXmlError("A <host> has no IPv4 or IPv6 address.")
    observations = []
    for port in ports:
        protocol = port.get("protocol", "")
        if protocol not in _PROTOCOLS:
            continue
        portid = port.get("portid", "")
        number = int(portid) if portid.isdigit() else _int(portid, f"portid of {address}")
        if not PORT_MIN <= number <= PORT_MAX:
            raise NmapXmlError(f"portid {number} of {address} is not within {PORT_MIN}-{PORT_MAX}.")
        state = port.find("state")
        if state is None or state.get("state") != "open":
            continue
        service = port.find("service")
        name, scripts = "", ()
        if service is not None:
            name, scripts = masscan_banner(service.get("name", ""), service.get("banner", ""))
        observations.append(_new_port((protocol, number, PortState.OPEN.value, name, "", "", "", False, scripts, "")))
    return HostObservation(address, True, (), tuple(observations))


def _certificate_pem(script) -> str:
    """The PEM text of an ssl-cert ``<script>`` (its top-level ``<elem key="pem">``), or "".

    Only the shape is checked here (bounded, PEM armour); ``certs.parsing``
    decides whether it is a certificate. Too long: not read at all, rather
    than cut into something that cannot parse.
    """
    for elem in script:
        if elem.tag == "elem" and elem.get("key") == "pem":
            text = (elem.text or "").strip()
            if len(text) > CERTIFICATE_PEM_MAX or not text.startswith("-----BEGIN CERTIFICATE-----"):
                return ""
            return _text(text, CERTIFICATE_PEM_MAX)
    return ""


def masscan_banner(kind: str, banner: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The service name and script output of a masscan banner of kind ``kind`` (bounded, NULs stripped)."""
    kind = _text(kind, 48)
    name = "" if (not kind or kind in MASSCAN_ANNOTATIONS or kind.startswith("(")) else kind
    scripts = ((f"masscan-{kind or 'banner'}", _text(banner, SCRIPT_OUTPUT_MAX)),) if banner else ()
    return name, scripts


def _read_extraports(groups: list) -> tuple[tuple[str, str, PortSet], ...]:
    """The states of ports nmap summarised instead of listing.

    One summary covers every probed port nmap did not list: its state is
    theirs, whatever protocol (nmap's port lists need not even be read). With
    several summaries (say closed and filtered), nmap 7.80 and later name the
    ports behind each in ``<extrareasons ports=...>``; without those lists the
    unlisted ports are unknown.
    """
    if len(groups) == 1:
        state = _STATE.get(groups[0].get("state", ""))
        return () if state is None else ((ALL_PROTOCOLS, state, PortSet()),)
    result = []
    for group in groups:
        state = _STATE.get(group.get("state", ""))
        if state is None:
            continue
        by_protocol: dict[str, PortSet] = {}
        for reason in group.iterfind("extrareasons"):
            protocol = reason.get("proto", "")
            if protocol not in _PROTOCOLS or not reason.get("ports"):
                continue
            try:
                ports = PortSet.from_nmap(reason.get("ports"))
            except PortSpecError as error:
                raise NmapXmlError(f"<extrareasons ports> is not a port list: {error}") from None
            by_protocol[protocol] = by_protocol.get(protocol, PortSet()) | ports
        result.extend((protocol, state, ports) for protocol, ports in by_protocol.items())
    return tuple(result)


def _address(text: str) -> str:
    if _PLAIN_IPV4(text):
        return text  # already what ipaddress would write
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise NmapXmlError(f"{text[:60]!r} is not an IP address.") from None


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise NmapXmlError(f"The {what} is {text[:20]!r}, not a number.") from None


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromtimestamp(int(text), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _text(value: str, limit: int) -> str:
    # PostgreSQL text cannot hold NUL; anything else is escaped where shown.
    if not value:
        return value
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:limit] if len(value) > limit else value


def _reason(error: ET.ParseError) -> str:
    message = str(error)
    return message.split(":", 1)[0] if ":" in message else message
