"""``netstat``: Linux's (net-tools, ``netstat -tulnp``, ``-e`` for the user) and Windows' (``netstat -ano``).

Linux:
    Proto Recv-Q Send-Q Local Address    Foreign Address  State   PID/Program name
    tcp        0      0 0.0.0.0:22       0.0.0.0:*        LISTEN  700/sshd: /usr/sbin
    tcp6       0      0 :::22            :::*             LISTEN  700/sshd: /usr/sbin
    udp        0      0 0.0.0.0:68       0.0.0.0:*                500/dhclient

Windows lists every connection; its listeners are TCP in LISTENING (or, in
a localised Windows, any TCP row whose foreign address is 0.0.0.0:0 or
[::]:0) and every UDP endpoint:
      Proto  Local Address          Foreign Address        State           PID
      TCP    0.0.0.0:135            0.0.0.0:0              LISTENING       1024
      UDP    [::1]:1900             *:*                                    4000
``netstat -anob`` adds "[process.exe]" (and service names) under a row.
"""

from listeners.parsing.sockets import ParsedReport, ReportError, Socket, digits, endpoint, lines, shown

LINUX, WINDOWS = "netstat", "netstat-windows"
_LINUX_PROTOCOLS = {"tcp": "tcp", "tcp6": "tcp", "udp": "udp", "udp6": "udp", "udpl": "udp", "udpl6": "udp"}
_OTHER = {"raw", "raw6", "unix", "sctp"}


def looks_like_linux(first: str) -> bool:
    tokens = first.split()
    if first.startswith("Active Internet connections") or tokens[:3] == ["Proto", "Recv-Q", "Send-Q"]:
        return True
    return len(tokens) >= 5 and tokens[0] in _LINUX_PROTOCOLS and tokens[1].isdigit() and tokens[2].isdigit()


def looks_like_windows(first: str) -> bool:
    tokens = first.split()
    if first.strip() == "Active Connections" or tokens[:3] == ["Proto", "Local", "Address"]:
        return True
    return len(tokens) >= 4 and tokens[0] in ("TCP", "UDP") and ":" in tokens[1]


def parse_linux(text: str) -> ParsedReport:
    report = ParsedReport(LINUX)
    with_user = False
    for number, line in lines(text):
        if line.startswith("Active UNIX domain sockets"):
            break  # the rest lists UNIX sockets: not the network's
        if line.startswith("Active Internet connections"):
            continue
        tokens = line.split()
        if tokens[0] == "Proto":
            with_user = "User" in tokens  # netstat -e: "User Inode" before PID/Program name
            continue
        protocol = tokens[0]
        if protocol not in _LINUX_PROTOCOLS:
            if protocol in _OTHER:
                raise ReportError(
                    f"{protocol} is not a TCP or UDP socket: run netstat with -tu (netstat -tulnp)", number
                )
            raise ReportError(f"{shown(protocol)} is not a protocol netstat prints", number)
        parts = line.split(None, 5)
        if len(parts) < 6 and not (len(parts) == 5 and protocol.startswith("udp")):
            raise ReportError(f"too few columns for netstat: {shown(line)}", number)
        _proto, _recv, _send, local, _foreign, *rest = parts
        rest = rest[0].split() if rest else []
        if protocol.startswith("tcp"):
            if not rest or rest[0] != "LISTEN":
                state = rest[0] if rest else "no state"
                raise ReportError(
                    f"{shown(state)} is not a listening socket: run netstat with -l (netstat -tulnp)", number
                )
            rest = rest[1:]
        elif rest and rest[0].isupper() and "/" not in rest[0] and rest[0] != "-":
            raise ReportError(
                f"{shown(rest[0])} is not a listening socket: run netstat with -l (netstat -tulnp)", number
            )
        user = ""
        if with_user and len(rest) >= 2:
            user, rest = rest[0], rest[2:]
        address, interface, port = endpoint(local, number)
        process, pid = _program(" ".join(rest), number)
        report.sockets.append(Socket(_LINUX_PROTOCOLS[protocol], address, port, interface, process, pid, user))
    return report


def _program(text: str, number: int) -> tuple[str, int | None]:
    """ "700/sshd: /usr/sbin" -> ("sshd: /usr/sbin", 700); "-" or nothing -> ("", None)."""
    text = text.strip()
    if text in ("", "-"):
        return "", None
    pid, _, name = text.partition("/")
    if not digits(pid):
        raise ReportError(f"{shown(text)} is not PID/Program name", number)
    return name.strip(), int(pid)


def parse_windows(text: str) -> ParsedReport:
    report = ParsedReport(WINDOWS)
    last: int | None = None  # the index of the socket an "[name.exe]" line names (netstat -b)
    seen_row = False
    for number, line in lines(text):
        stripped = line.strip()
        tokens = stripped.split()
        if stripped == "Active Connections" or tokens[:1] == ["Proto"]:
            continue
        if tokens[0] not in ("TCP", "UDP"):
            if stripped.startswith("[") and stripped.endswith("]"):
                if last is not None:
                    report.sockets[last] = _named(report.sockets[last], stripped[1:-1])
                continue
            if seen_row and (len(tokens) == 1 or stripped.startswith("Can not obtain ownership")):
                continue  # netstat -b: a service's name, or no owner, under a row

            raise ReportError(f"{shown(tokens[0])} is not TCP or UDP", number)
        last, seen_row = None, True
        if tokens[0] == "TCP":
            if len(tokens) != 5:
                raise ReportError(f"a TCP row has 5 columns (Proto, Local, Foreign, State, PID): {shown(line)}", number)
            _proto, local, foreign, state, pid = tokens
            if state != "LISTENING" and foreign not in ("0.0.0.0:0", "[::]:0"):
                report.skipped += 1  # a connection, not a listener
                continue
        else:
            if len(tokens) != 4:
                raise ReportError(f"a UDP row has 4 columns (Proto, Local, Foreign, PID): {shown(line)}", number)
            _proto, local, _foreign, pid = tokens
        if not digits(pid):
            raise ReportError(f"{shown(pid)} is not a process id", number)
        address, interface, port = endpoint(local, number)
        report.sockets.append(Socket(tokens[0].lower(), address, port, interface, pid=int(pid)))
        last = len(report.sockets) - 1
    return report


def _named(socket: Socket, process: str) -> Socket:
    return Socket(socket.protocol, socket.address, socket.port, socket.interface, process, socket.pid, socket.user)
