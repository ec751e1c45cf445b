"""The nmap XML reader: pure, streaming, and hostile-file safe."""

import io
import re
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inventory.choices import PortState
from inventory.ports import PortSet
from scans.nmap_xml import HostListedTwice, NmapXmlError, NmapXmlReader
from scans.scanfiles import merged_hosts, open_scan_file

FIXTURES = Path(__file__).parent / "fixtures" / "nmap"


def read(name: str):
    with open(FIXTURES / name, "rb") as source:
        reader = NmapXmlReader(source)
        hosts = list(reader.hosts())
    return reader.info, hosts


def test_a_real_nmap_file_is_read_into_hosts_ports_and_coverage():
    info, hosts = read("lab_two_hosts_versions.xml")

    info.check_complete()  # raises unless nmap finished the run
    assert info.version == "7.93"
    assert info.probed == {"tcp": PortSet.parse("41000-41100")}
    assert info.started == datetime(2026, 11, 23, 10, 49, 13, tzinfo=UTC)
    assert [host.address for host in hosts] == ["127.77.9.1", "127.77.9.2"]
    assert all(host.up for host in hosts)

    ssh, wrapped = hosts[0].ports
    assert (ssh.protocol, ssh.port, ssh.state) == ("tcp", 41022, PortState.OPEN)
    assert (ssh.name, ssh.product, ssh.version) == ("ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3")
    assert ssh.extrainfo == "protocol 2.0"
    assert ssh.identified
    assert wrapped.name == "tcpwrapped"


def test_a_single_summary_covers_every_unlisted_probed_port():
    _, hosts = read("lab_two_hosts_versions.xml")
    assert hosts[0].other_ports == (("*", PortState.CLOSED, PortSet()),)


def test_several_summaries_keep_their_port_lists(tmp_path):
    text = (FIXTURES / "lab_two_hosts_versions.xml").read_text()
    text = text.replace(
        '<extrareasons reason="reset" count="99" proto="tcp" ports="41000-41021,41023-41079,41081-41100"/>'
        "\n</extraports>",
        '<extrareasons reason="reset" count="97" proto="tcp" ports="41000-41021,41023-41079,41081-41098"/>'
        "\n</extraports>"
        '<extraports state="filtered" count="2">'
        '<extrareasons reason="no-response" count="2" proto="tcp" ports="41099-41100"/>'
        "</extraports>",
    )
    path = tmp_path / "mixed.xml"
    path.write_text(text)
    with open(path, "rb") as source:
        first = next(NmapXmlReader(source).hosts())
    states = {state: ports for _, state, ports in first.other_ports}
    assert 41099 in states[PortState.FILTERED] and 41000 in states[PortState.CLOSED]
    assert 41099 not in states[PortState.CLOSED]


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("truncated_mid_host.xml", "malformed or truncated at line"),
        ("no_runstats.xml", "ends before nmap's run statistics"),
        ("portid_not_a_number.xml", "portid of 127.77.9.1 is 'abc', not a number"),
        ("portid_out_of_range.xml", "portid 70000 of 127.77.9.1 is not within 1-65535"),
        ("wrong_root.xml", "not an nmap XML file: the root element is <report>"),
        ("nmap_reported_error.xml", "did not complete: Failed to open device eth7"),
        ("xxe_external_entity.xml", "declares XML entities"),
        ("billion_laughs.xml", "declares XML entities"),
        ("empty.xml", "empty"),
        ("not_xml.xml", "malformed"),
    ],
)
def test_bad_files_raise_a_clear_error(fixture, message):
    with pytest.raises(NmapXmlError, match=message):
        read(fixture)


def test_the_reader_streams_without_keeping_hosts(tmp_path):
    """Each host is dropped once read: the tree never holds more than one."""
    head = (FIXTURES / "lab_two_hosts_versions.xml").read_text()
    start, end = head.index("<host "), head.index("<runstats>")
    host = head[start : head.index("</host>") + len("</host>\n")]
    many = (
        head[:start]
        + "".join(host.replace("127.77.9.1", f"127.78.{i // 250}.{i % 250 + 1}") for i in range(2000))
        + head[end:]
    )
    path = tmp_path / "many.xml"
    path.write_text(many)
    with open(path, "rb") as source:
        reader = NmapXmlReader(source)
        count = 0
        for _ in reader.hosts():
            count += 1
    assert count == 2000


def many_hosts(count: int) -> str:
    """``count`` copies of the fixture's first host, each with a long script output (as ssl-cert writes)."""
    head = (FIXTURES / "lab_two_hosts_versions.xml").read_text()
    head = head.replace("</service></port>", f'</service><script id="ssl-cert" output="{"A" * 1900}"/></port>')
    start, end = head.index("<host "), head.index("<runstats>")
    host = head[start : head.index("</host>") + len("</host>\n")]
    hosts = "".join(host.replace("127.77.9.1", f"127.78.{i // 250}.{i % 250 + 1}") for i in range(count))
    return head[:start] + hosts + head[end:]


SHAPES = {
    # as nmap writes it
    "nmap": lambda text: text.encode(),
    # a tool that rewrote it on one line
    "one line": lambda text: text.replace("\n", " ").encode(),
    # a ping scan's hosts have no attributes
    "bare host tags": lambda text: re.sub(r'<host starttime="\d+" endtime="\d+">', "<host>", text).encode(),
    # PowerShell's redirection of `nmap -oX -` writes UTF-16 with a byte order mark
    "utf-16": lambda text: text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"),
    # a hostname in the file's declared single-byte encoding
    "latin-1": lambda text: (
        text.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
        .replace("<hostnames>\n</hostnames>", '<hostnames><hostname name="café" type="PTR"/></hostnames>')
        .encode("latin-1")
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_file_of_any_shape_or_encoding_streams_in_bounded_memory(shape):
    """Memory follows the host being read, not the file, however it is laid out or encoded
    (what grows with the hosts is a few hundred bytes each: their addresses, for duplicates)."""
    blob = SHAPES[shape](many_hosts(1600))
    assert len(blob) > 4 << 20
    tracemalloc.start()
    try:
        reader = NmapXmlReader(io.BytesIO(blob))
        count, last = 0, None
        for host in reader.hosts():
            count, last = count + 1, host
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 1600
    assert (last.address, last.hostnames) == ("127.78.6.100", ("café",) if shape == "latin-1" else ())
    assert peak < len(blob) / 4, f"{peak / 2**20:.1f} MiB for a {len(blob) / 2**20:.1f} MiB file"


def test_nmap_by_hostname_lists_the_address_once_per_name_and_the_reader_merges_it():
    """Real nmap 7.93, given www.lab.test and lab.test (one address): two <host> entries."""
    path = FIXTURES / "lab_two_names_one_address.xml"
    with open(path, "rb") as source:
        entries = list(NmapXmlReader(source).entries())
    assert [entry.address for entry in entries] == ["198.18.20.1", "198.18.20.2", "198.18.20.1"]
    with open(path, "rb") as source, pytest.raises(HostListedTwice, match=r"198\.18\.20\.1 is listed twice"):
        list(NmapXmlReader(source).hosts())  # for callers that cannot merge

    with open(path, "rb") as source:
        hosts = list(merged_hosts(open_scan_file(source)))
    assert [host.address for host in hosts] == ["198.18.20.2", "198.18.20.1"]
    merged = hosts[1]
    assert merged.hostnames == ("www.lab.test", "lab.test")
    assert [(port.port, port.state) for port in merged.ports] == [(41022, "open"), (41443, "open")]
    assert merged.other_ports == (("*", PortState.CLOSED, PortSet()),)


def test_merging_a_repeated_address_keeps_memory_bounded():
    """Two passes, holding only the repeated address: memory does not follow the file."""
    text = many_hosts(1600)
    start = text.index("<host ")
    first = text[start : text.index("</host>", start) + len("</host>\n")]
    blob = (text[: text.index("<runstats>")] + first + text[text.index("<runstats>") :]).encode()
    tracemalloc.start()
    try:
        count = sum(1 for _ in merged_hosts(open_scan_file(io.BytesIO(blob))))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 1600
    assert peak < len(blob) / 4, f"{peak / 2**20:.1f} MiB for a {len(blob) / 2**20:.1f} MiB file"
