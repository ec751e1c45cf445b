"""Reading host reports (listeners.parsing): every format from its tools' documented shapes, and bad input.

Pure: no database. Each fixture under tests/fixtures/listeners is the shape
its tool prints (ss and netstat as run on Debian 12; osqueryi --json and
osqueryd's result log, snapshot, event and batch formats; Windows netstat
-ano and -anob, and PowerShell's ConvertTo-Json of Get-NetTCPConnection and
Get-NetUDPEndpoint, UTF-16 as Windows PowerShell 5.1 writes it).
"""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from listeners.parsing import ReportError, Socket, decode, detect, parse
from listeners.parsing.sockets import BindScope

pytestmark = pytest.mark.sqlite

FIXTURES = Path(__file__).parent / "fixtures" / "listeners"


def read(name: str):
    return parse(decode((FIXTURES / name).read_bytes()))


def keys(report):
    return {(socket.protocol, socket.address, socket.port, socket.scope) for socket in report.sockets}


def test_ss_without_header_every_address_form():
    report = read("ss-Htulnp.txt")
    assert report.format == "ss"
    assert keys(report) == {
        ("tcp", "0.0.0.0", 22, BindScope.ALL),
        ("tcp", "::", 22, BindScope.ALL),
        ("tcp", "127.0.0.53", 53, BindScope.LOOPBACK),
        ("tcp", "127.0.0.1", 5432, BindScope.LOOPBACK),
        ("tcp", "198.18.60.2", 8080, BindScope.ADDRESS),
        ("tcp", "*", 80, BindScope.ALL),
        ("udp", "127.0.0.53", 53, BindScope.LOOPBACK),
        ("udp", "0.0.0.0", 68, BindScope.ALL),
        ("udp", "fe80::1", 546, BindScope.ADDRESS),
        ("tcp", "::ffff:127.0.0.1", 9000, BindScope.LOOPBACK),
    }
    by_port = {(socket.protocol, socket.port): socket for socket in report.sockets}
    assert by_port[("tcp", 53)].interface == "lo"
    assert by_port[("udp", 546)].interface == "eth0"
    assert by_port[("tcp", 8080)] == Socket("tcp", "198.18.60.2", 8080, "", "<script>alert(1)</script>", 4242, "")
    assert by_port[("udp", 68)].process == "" and by_port[("udp", 68)].pid is None  # ss without root


def test_ss_with_header_and_user_and_with_one_protocol():
    report = read("ss-tulnpe.txt")
    assert [(s.protocol, s.port, s.process, s.pid, s.user) for s in report.sockets] == [
        ("tcp", 22, "sshd", 700, "uid 0"),
        ("udp", 323, "chronyd", 600, "uid 106"),
    ]
    # ss -tln: no Netid column; LISTEN is TCP.
    assert keys(read("ss-tln.txt")) == {("tcp", "0.0.0.0", 22, BindScope.ALL), ("tcp", "::", 22, BindScope.ALL)}


def test_netstat_linux():
    report = read("netstat-tulnp.txt")
    assert report.format == "netstat"
    assert [(s.protocol, s.address, s.port, s.process, s.pid) for s in report.sockets] == [
        ("tcp", "0.0.0.0", 22, "sshd: /usr/sbin", 700),
        ("tcp", "127.0.0.1", 5432, "postgres", 2213),
        ("tcp", "::", 22, "sshd: /usr/sbin", 700),
        ("tcp", "::1", 6379, "redis-server 1", 2233),
        ("udp", "0.0.0.0", 68, "dhclient", 500),
        ("udp", "fe80::1", 546, "", None),
    ]


def test_netstat_windows_keeps_listeners_and_skips_connections():
    report = read("netstat-ano.txt")
    assert report.format == "netstat-windows"
    assert keys(report) == {
        ("tcp", "0.0.0.0", 135, BindScope.ALL),
        ("tcp", "0.0.0.0", 445, BindScope.ALL),
        ("tcp", "198.18.56.10", 139, BindScope.ADDRESS),
        ("tcp", "::", 135, BindScope.ALL),
        ("tcp", "::1", 49664, BindScope.LOOPBACK),
        ("udp", "0.0.0.0", 123, BindScope.ALL),
        ("udp", "fe80::5efe:c0a8:380a", 1900, BindScope.ADDRESS),
    }
    assert report.skipped == 2  # ESTABLISHED, TIME_WAIT
    # -b: the executable under its row; a localised state still listens (foreign 0.0.0.0:0).
    owned = read("netstat-anob.txt")
    assert [(s.port, s.process, s.pid) for s in owned.sockets] == [
        (135, "svchost.exe", 1024),
        (445, "", 4),
        (3389, "svchost.exe", 1200),
    ]


def test_osqueryi_json_skips_unix_sockets_and_reads_joined_columns():
    report = read("osqueryi.json")
    assert report.format == "osquery"
    assert keys(report) == {
        ("tcp", "0.0.0.0", 22, BindScope.ALL),
        ("tcp", "::", 22, BindScope.ALL),
        ("tcp", "127.0.0.1", 5432, BindScope.LOOPBACK),
        ("udp", "0.0.0.0", 68, BindScope.ALL),
    }
    assert report.skipped == 1 and report.taken_at is None
    joined = read("osqueryi-joined.json")
    assert {(s.port, s.process, s.user) for s in joined.sockets} == {
        (8080, "<img src=x onerror=alert(1)>", "app"),
        (22, "sshd", "root"),
    }


def test_osqueryd_logs_snapshot_events_and_batches():
    snapshot = read("osqueryd-snapshot.log")
    # The last snapshot is the state; another query's line is skipped.
    assert {(s.port, s.pid) for s in snapshot.sockets} == {(22, 700), (9200, 9999)}
    assert snapshot.taken_at == datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
    assert snapshot.host_name == "web-1" and snapshot.skipped == 1
    events = read("osqueryd-events.log")
    # 5432 rebound from 0.0.0.0 to 127.0.0.1 by a removed and an added event.
    assert keys(events) == {("tcp", "0.0.0.0", 22, BindScope.ALL), ("tcp", "127.0.0.1", 5432, BindScope.LOOPBACK)}
    assert events.taken_at == datetime(2026, 12, 6, 10, 10, tzinfo=UTC)
    batch = read("osqueryd-batch.log")
    assert keys(batch) == {("tcp", "0.0.0.0", 22, BindScope.ALL), ("udp", "0.0.0.0", 123, BindScope.ALL)}
    with pytest.raises(
        ReportError, match="starts at run 7 of query 'listening_ports': its earlier results are missing"
    ):
        read("osqueryd-midstream.log")


def test_powershell_json_in_every_shape():
    both = read("powershell.json")
    assert both.format == "powershell"
    assert keys(both) == {
        ("tcp", "0.0.0.0", 135, BindScope.ALL),
        ("tcp", "::", 135, BindScope.ALL),
        ("udp", "127.0.0.1", 1900, BindScope.LOOPBACK),
    }
    assert both.skipped == 1  # an established connection
    assert keys(read("powershell-utf16.json")) == keys(both)  # Windows PowerShell 5.1 writes UTF-16
    whole = read("powershell-tcp-whole.json")
    assert {(s.protocol, s.port, s.pid) for s in whole.sockets} == {("tcp", 3389, 1200), ("tcp", 49664, 700)}
    one = read("powershell-udp-one.json")  # ConvertTo-Json of one object is not an array
    assert keys(one) == {("udp", "0.0.0.0", 5353, BindScope.ALL)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the report is empty"),
        ("hello world\n", "line 1: not a report PortWatch reads"),
        ("<nmaprun></nmaprun>", "not a report PortWatch reads"),
        ("tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\ntcp ESTAB 0 0 198.18.62.1:22 198.18.62.2:5000\n",
         "line 2: ESTAB is not a listening socket: run ss with -l"),
        ("u_str LISTEN 0 4096 /run/x 123 * 0\n", "line 1: u_str is not a TCP or UDP socket"),
        ("tcp LISTEN 0 128 0.0.0.0:70000 0.0.0.0:*\n", "line 1: 70000 in '0.0.0.0:70000' is not a port"),
        ("tcp LISTEN 0 128 999.1.1.1:22 0.0.0.0:*\n", "line 1: '999.1.1.1' is not an IP address"),
        ("tcp LISTEN 0 128\n", "not a report PortWatch reads"),
        ("tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\ntcp LISTEN 0 128\n", "line 2: too few columns for ss"),
        ("Proto Recv-Q Send-Q Local Address Foreign Address State\ntcp 0 0 0.0.0.0:22 1.2.3.4:5 ESTABLISHED 1/x\n",
         "line 2: 'ESTABLISHED' is not a listening socket: run netstat with -l"),
        ('[{"address": "0.0.0.0", "port": "22", "protocol": "1"}]', "row 1: protocol '1' is not 6 (TCP)"),
        ('[{"address": "0.0.0.0", "port": "22"', "not JSON"),
        ('{"some": "thing"}', "neither osquery's listening_ports nor Get-NetTCPConnection"),
        ('{"LocalAddress": "0.0.0.0", "LocalPort": "http"}', "socket 1: LocalPort 'http' is not a number"),
        ('{"TCP": 5}', "TCP: expected a list of sockets"),
        ("tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* " + "x" * 5000, "line 1: 5,038 characters"),
        # Digits str.isdigit takes and int does not, and JSON of the wrong types (a review found them: 500s before).
        ("Proto Recv-Q Send-Q Local Address Foreign Address State\ntcp 0 0 0.0.0.0:22 0.0.0.0:* LISTEN \u00b2/sshd\n",
         "line 2: '\u00b2/sshd' is not PID/Program name"),
        ("  TCP    0.0.0.0:135    0.0.0.0:0    LISTENING    \u00b2\n", "line 1: '\u00b2' is not a process id"),
        ('[{"address": "0.0.0.0", "port": "--5", "protocol": "6"}]', "port '--5' is not a number"),
        ('[{"address": "0.0.0.0", "port": "\u00b2", "protocol": "6"}]', "is not a number"),
        ('[{"LocalPort": "\u00b2", "LocalAddress": "0.0.0.0"}]', "is not a number"),
        ('[{"address": "0.0.0.0", "port": "22", "protocol": "6", "fd": [1]}]', None),
        ('{"name": "q", "snapshot": 5, "action": "snapshot"}', "snapshot must be a list of rows"),
        ('{"name": "q", "snapshot": {"a": 1}, "action": "snapshot"}', "snapshot must be a list of rows"),
        ('{"name": "q", "diffResults": [1]}', "diffResults a mapping"),
        ('{"name": "q", "diffResults": {"added": [{"address": "0.0.0.0", "port": "22", "protocol": "6"}], '
         '"removed": 5}}', "diffResults' removed must be a list"),
        ("[" * 200_000, "not"),
        ("[" + "1" * 5000 + "]", "JSON PortWatch will not read"),
    ],
)  # fmt: skip
def test_bad_reports_name_what_is_wrong(text, message):
    if message is None:  # odd but readable
        assert parse(decode(text.encode())).sockets
        return
    with pytest.raises(ReportError) as raised:
        parse(decode(text.encode()))
    assert message in str(raised.value)


def test_text_too_long_for_the_inventory_is_cut_and_an_impossible_pid_dropped():
    name, interface = "p" * 300, "i" * 100
    line = f'tcp LISTEN 0 128 127.0.0.1%{interface}:22 0.0.0.0:* users:(("{name}",pid=99999999999,fd=3))'
    (socket,) = parse(line).sockets
    assert (len(socket.process), len(socket.interface), socket.pid) == (255, 64, None)


def test_an_empty_snapshot_of_the_listeners_query_closes_them_all():
    first = (FIXTURES / "osqueryd-snapshot.log").read_text().splitlines()[0]
    empty = (
        '{"snapshot":[],"action":"snapshot","name":"listening_ports","hostIdentifier":"web-1","unixTime":1796558400}'
    )
    report = parse(f"{first}\n{empty}\n")
    assert report.sockets == [] and report.taken_at == datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_a_truncated_report_and_binary_data_are_refused():
    whole = (FIXTURES / "powershell.json").read_text()
    with pytest.raises(ReportError, match="not JSON"):
        parse(whole[: len(whole) // 2])
    truncated = (FIXTURES / "ss-Htulnp.txt").read_text()[:-40]  # cut inside the last line
    with pytest.raises(ReportError, match="line 10"):
        parse(truncated)
    with pytest.raises(ReportError, match="not text"):
        decode(b"\x89PNG\r\n\x1a\n\xff\xfe\xfa")
    with pytest.raises(ReportError, match="NUL"):
        decode(b"tcp LISTEN\x00")


def test_the_format_can_be_named_and_a_wrong_name_is_refused():
    text = (FIXTURES / "ss-tln.txt").read_text()
    assert detect(text) == "ss"
    assert parse(text, "ss").format == "ss"
    with pytest.raises(ReportError, match="'xml' is not a format"):
        parse(text, "xml")
    with pytest.raises(ReportError):
        parse(text, "osquery")


def test_a_hundred_thousand_lines():
    lines = [f"tcp LISTEN 0 128 198.18.{n // 60000}.{n % 250 + 1}:{n % 60000 + 1} 0.0.0.0:*" for n in range(100_000)]
    report = parse("\n".join(lines))
    assert len(report.sockets) == 100_000
