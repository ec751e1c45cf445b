"""Linux ``ss``: ``ss -Htulnp`` (no header) and ``ss -tulnp`` (a header), ``-e`` for the user.

    tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=700,fd=3)) uid:0 ino:1273 sk:3 <->
    udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=400,fd=13))

With only ``-t`` or only ``-u`` ss leaves out the Netid column: a TCP
listener's state is LISTEN, a UDP socket's UNCONN. Without root, ss shows no
process. A socket in any other state is not a listener: ``-l`` was left out.
"""

import re

from listeners.parsing.sockets import ParsedReport, ReportError, Socket, endpoint, lines, shown

FORMAT = "ss"
NETIDS = {"tcp": "tcp", "udp": "udp", "sctp": "sctp"}
LISTENING = {"LISTEN": "tcp", "UNCONN": "udp"}
STATES = {"LISTEN", "UNCONN", "ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSE-WAIT",
          "LAST-ACK", "CLOSING", "CLOSED", "UNKNOWN"}  # fmt: skip
# Other netids ss prints without -t/-u (UNIX, raw, netlink, packet sockets).
OTHER_NETIDS = {"u_str", "u_dgr", "u_seq", "raw", "nl", "p_raw", "p_dgr", "mptcp", "tipc", "vsock", "xdp", "icmp6"}
_PROCESS = re.compile(r'\("(?P<name>.*?)",pid=(?P<pid>\d+),fd=\d+\)')
_UID = re.compile(r"(?:^|\s)uid:(?P<uid>\d+)(?:\s|$)")


def looks_like(first: str) -> bool:
    tokens = first.split()
    if tokens[:2] in (["Netid", "State"], ["State", "Recv-Q"]):
        return True
    if len(tokens) >= 5 and tokens[0] in NETIDS.keys() | OTHER_NETIDS and tokens[1] in STATES:
        return True
    return len(tokens) >= 4 and tokens[0] in STATES and tokens[1].isdigit()


def parse(text: str) -> ParsedReport:
    report = ParsedReport(FORMAT)
    for number, line in lines(text):
        tokens = line.split()
        if tokens[0] in ("Netid", "State") and "Recv-Q" in tokens:
            continue  # the header, or a second one (two ss outputs one after the other)
        if tokens[0] in STATES:
            netid, rest = None, line.split(None, 5)
        else:
            netid, rest = tokens[0], line.split(None, 6)[1:]
        if len(rest) < 5:
            raise ReportError(f"too few columns for ss: {shown(line)}", number)
        state, _recv, _send, local, _peer, *process = rest
        if netid is not None and netid not in NETIDS:
            if netid in OTHER_NETIDS:
                raise ReportError(f"{netid} is not a TCP or UDP socket: run ss with -tu (ss -Htulnp)", number)
            raise ReportError(f"{shown(netid)} is not a socket type ss prints", number)
        if state not in STATES:
            raise ReportError(f"{shown(state)} is not a socket state ss prints", number)
        if state not in LISTENING:
            raise ReportError(f"{state} is not a listening socket: run ss with -l (ss -Htulnp)", number)
        protocol = NETIDS[netid] if netid is not None else LISTENING[state]
        address, interface, port = endpoint(local, number)
        extra = process[0] if process else ""
        owner = _PROCESS.search(extra)
        uid = _UID.search(extra)
        report.sockets.append(
            Socket(
                protocol,
                address,
                port,
                interface,
                process=owner["name"] if owner else "",
                pid=int(owner["pid"]) if owner else None,
                user=f"uid {uid['uid']}" if uid else "",
            )
        )
    return report
