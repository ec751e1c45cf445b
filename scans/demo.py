"""The demo fleet: six pretend servers on loopback whose ports open, close and change.

``manage.py demo`` runs it so that a newcomer sees the whole loop (inventory,
changes, review, alerts) without a network to scan. Linux routes all of
127.0.0.0/8 to ``lo``, so each "server" is one loopback address with its own
listeners; nothing outside 127.0.0.0/8 is ever bound. Listeners answer like
the real thing where that is cheap (an SSH banner, an HTTP reply), so nmap
``-sV`` names the service and its version.

Ports are the usual port plus 40,000 (SSH on 40022, HTTP on 40080): no
privileges needed, and clear of the test lab's 41000-41999.

A host that "goes quiet" stops all its listeners. nmap always reports a
loopback address as up, so PortWatch records its ports as closed rather than
the host as unreachable; an unreachable host needs a real network (the test
suite's network-namespace lab shows one).
"""

import ipaddress
import selectors
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scans import demo_tls

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
DEFAULT_FIRST_ADDRESS = "127.77.0.1"
# What ``manage.py demo`` sets up, found again by these names on the next run.
DEMO_ZONE = "demo"
DEMO_PROFILE = "demo"
DEMO_TARGET = "Demo fleet"
DEMO_CHANNEL = "Demo log"
DEMO_OWNER = "platform-team"
PORT_OFFSET = 40_000
# A reply-style listener waits this long for the client to speak: longer than
# nmap's 6 s wait for a banner, so nmap's next probe gets the reply.
REQUEST_TIMEOUT = 10.0


# --- listeners ------------------------------------------------------------------


class Listeners:
    """Listening sockets served by one thread.

    Each connection is accepted and sent ``banner`` (if any) at once, then
    closed; a listener with a ``reply`` instead reads the client's request
    first (in a thread of its own), then answers and closes, as an HTTP
    server does.
    """

    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._sockets: dict[tuple[str, int], socket.socket] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="listeners", daemon=True)
        self._thread.start()

    def open(
        self,
        host: str,
        port: int,
        banner: bytes | None = None,
        *,
        reply: bytes | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(256)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        with self._lock:
            self._sockets[(host, port)] = sock
            self._selector.register(sock, selectors.EVENT_READ, (banner, reply, tls))

    def close(self, host: str, port: int) -> None:
        with self._lock:
            sock = self._sockets.pop((host, port))
            self._selector.unregister(sock)
        sock.close()

    def close_all(self) -> None:
        for key in list(self._sockets):
            self.close(*key)
        self._stop.set()
        self._thread.join(timeout=5)
        self._selector.close()

    @property
    def open_ports(self) -> set[tuple[str, int]]:
        return set(self._sockets)

    def _serve(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                events = self._selector.select(timeout=0.05) if self._sockets else []
            for key, _ in events:
                try:
                    conn, _ = key.fileobj.accept()
                except (BlockingIOError, OSError):
                    continue
                banner, reply, tls = key.data
                if reply:
                    threading.Thread(target=_answer, args=(conn, reply, tls), daemon=True).start()
                    continue
                try:
                    if banner:
                        conn.setblocking(True)
                        conn.settimeout(1)
                        conn.sendall(banner)
                except OSError:
                    pass
                finally:
                    conn.close()
            if not events:
                self._stop.wait(0.05)


def _answer(conn: socket.socket, reply: bytes, tls: ssl.SSLContext | None = None) -> None:
    """Read a request (up to its blank line), send ``reply``, close; over TLS first if ``tls``."""
    try:
        conn.settimeout(REQUEST_TIMEOUT)
        if tls is not None:
            conn = tls.wrap_socket(conn, server_side=True)
        request = b""
        while b"\r\n\r\n" not in request and b"\n\n" not in request and len(request) < 8192:
            data = conn.recv(4096)
            if not data:
                break
            request += data
        if request:
            conn.sendall(reply)
    except OSError:
        pass
    finally:
        conn.close()


def wildcard_listening_ports() -> set[int]:
    """TCP ports something on this machine listens on for every address.

    Binding one of them on a loopback address fails, so the demo and the
    test lab check their ports against this first.
    """
    ports = set()
    for name, wildcard in (("/proc/net/tcp", "00000000"), ("/proc/net/tcp6", "0" * 32)):
        path = Path(name)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, port = local.split(":")
            if state == "0A" and address == wildcard:  # 0A = LISTEN
                ports.add(int(port, 16))
    return ports


# --- what the fleet runs --------------------------------------------------------


@dataclass(frozen=True)
class Software:
    """What a listener says: a banner sent on connect, or a reply to a request (over TLS with ``tls``)."""

    service: str
    label: str
    banner: bytes = b""
    reply: bytes = b""
    # (common name, days until it expires, self-signed): the certificate it presents (scans.demo_tls).
    tls: tuple[str, int, bool] | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        common_name, days_left, self_signed = self.tls
        return demo_tls.server_context(common_name, days_left=days_left, self_signed=self_signed)


def _http(server: str, title: str, extra_headers: str = "", status: str = "HTTP/1.1 200 OK") -> bytes:
    body = f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n"
    return (
        f"{status}\r\nServer: {server}\r\nContent-Type: text/html; charset=utf-8\r\n{extra_headers}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    ).encode()


def ssh(version: str) -> Software:
    return Software("ssh", f"OpenSSH {version.partition(' ')[0]}", banner=f"SSH-2.0-OpenSSH_{version}\r\n".encode())


OPENSSH_OLD = ssh("9.2p1 Debian-2+deb12u3")
OPENSSH_NEW = ssh("9.6p1 Debian-4")
NGINX = Software("http", "nginx 1.24.0", reply=_http("nginx/1.24.0", "Welcome to nginx!"))
POSTFIX = Software("smtp", "Postfix smtpd", banner=b"220 mail-1.demo.internal ESMTP Postfix (Debian/GNU)\r\n")
VSFTPD = Software("ftp", "vsftpd 3.0.3", banner=b"220 (vsFTPd 3.0.3)\r\n")
JETTY = Software(
    "http", "Jetty 10.0.18 (Jenkins)", reply=_http("Jetty(10.0.18)", "Dashboard [Jenkins]", "X-Jenkins: 2.440.3\r\n")
)
# web-1's certificate expires within the warning (30 days by default) until it is renewed; web-2's is self-signed.
NGINX_TLS_EXPIRING = Software("https", "nginx 1.24.0, TLS", reply=NGINX.reply, tls=("web-1.demo.internal", 12, False))
NGINX_TLS_RENEWED = Software(
    "https", "nginx 1.24.0, TLS (renewed)", reply=NGINX.reply, tls=("web-1.demo.internal", 365, False)
)
NGINX_TLS_SELF_SIGNED = Software(
    "https", "nginx 1.24.0, TLS (self-signed)", reply=NGINX.reply, tls=("web-2.demo.internal", 180, True)
)
PYTHON_HTTP = Software(
    "http",
    "Python http.server",
    reply=_http("SimpleHTTP/0.6 Python/3.11.2", "Directory listing for /", status="HTTP/1.0 200 OK"),
)


@dataclass(frozen=True)
class Server:
    name: str
    # Position in the fleet: the address is the first address plus this.
    offset: int
    # Usual port (before PORT_OFFSET) -> what listens there at the start.
    services: dict[int, Software] = field(default_factory=dict)


SERVERS = [
    Server("web-1", 0, {22: OPENSSH_OLD, 80: NGINX, 443: NGINX_TLS_EXPIRING}),
    Server("web-2", 1, {22: OPENSSH_OLD, 80: NGINX, 443: NGINX_TLS_SELF_SIGNED}),
    Server("mail-1", 2, {22: OPENSSH_OLD, 25: POSTFIX}),
    Server("files-1", 3, {22: OPENSSH_OLD, 21: VSFTPD}),
    Server("build-1", 4, {22: OPENSSH_OLD, 8080: JETTY}),
    Server("dev-1", 5, {22: OPENSSH_OLD}),
]
# Every port a step may open: the demo's target scans these and nothing else.
USUAL_PORTS = (21, 22, 25, 80, 443, 8000, 8080)
DEMO_PORTS = tuple(PORT_OFFSET + port for port in USUAL_PORTS)


def demo_port(usual: int) -> int:
    return PORT_OFFSET + usual


@dataclass(frozen=True)
class Step:
    """One scripted change of the fleet, and what the next scan should record."""

    text: str
    expect: str
    opens: tuple[tuple[str, int, Software], ...] = ()
    closes: tuple[tuple[str, int], ...] = ()
    quiet: str = ""
    back: str = ""


# One cycle brings the fleet back to where it started, so it can repeat.
STEPS = [
    Step(
        "dev-1 starts a debug web server on port 48000",
        "port_opened 48000/tcp on dev-1 -> alert 'Unreviewed port opened'",
        opens=(("dev-1", 8000, PYTHON_HTTP),),
    ),
    Step(
        "web-2 stops nginx (port 40080)",
        "port_closed 40080/tcp on web-2 -> alert 'Approved port closed'",
        closes=(("web-2", 80),),
    ),
    Step(
        "files-1 goes quiet: all its services stop",
        "port_closed 40021 and 40022/tcp on files-1 (loopback always answers, so not 'host unreachable')",
        quiet="files-1",
    ),
    Step(
        "files-1 comes back",
        "port_opened 40021 and 40022/tcp on files-1 -> alert 'Unreviewed port opened' (ftp)",
        back="files-1",
    ),
    Step(
        "web-1 upgrades OpenSSH 9.2p1 -> 9.6p1",
        "service_changed 40022/tcp on web-1 (version)",
        opens=(("web-1", 22, OPENSSH_NEW),),
    ),
    Step(
        "web-2 starts nginx again; dev-1 stops its debug server",
        "port_opened 40080/tcp on web-2, port_closed 48000/tcp on dev-1",
        opens=(("web-2", 80, NGINX),),
        closes=(("dev-1", 8000),),
    ),
    Step(
        "web-1 renews its TLS certificate (port 40443)",
        "certificate_changed 40443/tcp on web-1 -> alert 'Certificate changed, expiring or expired'",
        opens=(("web-1", 443, NGINX_TLS_RENEWED),),
    ),
    Step(
        "web-1 rolls back to last month's image: OpenSSH 9.2p1 and the old, expiring certificate",
        "service_changed 40022/tcp and certificate_changed 40443/tcp on web-1",
        opens=(("web-1", 22, OPENSSH_OLD), ("web-1", 443, NGINX_TLS_EXPIRING)),
    ),
]


class FleetError(ValueError):
    """The fleet cannot be placed or started where it was asked to."""


def fleet_addresses(first_address: str) -> list[ipaddress.IPv4Address]:
    """The fleet's addresses from ``first_address`` on: all of them inside 127.0.0.0/8."""
    try:
        first = ipaddress.ip_address(first_address)
    except ValueError:
        raise FleetError(f"{first_address!r} is not an IPv4 address such as {DEFAULT_FIRST_ADDRESS}.") from None
    count = len(SERVERS)
    if first.version != 4 or first not in LOOPBACK or first + (count - 1) not in LOOPBACK:
        raise FleetError(
            f"The demo fleet binds only loopback addresses: {first_address} to {count - 1} addresses after it "
            "must lie within 127.0.0.0/8 (for example 127.77.0.1)."
        )
    if first == LOOPBACK.network_address or first + (count - 1) == LOOPBACK.broadcast_address:
        raise FleetError("The demo fleet cannot use 127.0.0.0 or 127.255.255.255.")
    return [first + server.offset for server in SERVERS]


def fleet_range(first_address: str) -> str:
    """The target text covering the fleet, e.g. ``127.77.0.1-127.77.0.6``."""
    addresses = fleet_addresses(first_address)
    return f"{addresses[0]}-{addresses[-1]}"


class Fleet:
    """The demo servers on their loopback addresses, changed one step at a time."""

    def __init__(self, first_address: str = DEFAULT_FIRST_ADDRESS):
        addresses = fleet_addresses(first_address)
        self.addresses = {server.name: str(address) for server, address in zip(SERVERS, addresses, strict=True)}
        # What each server runs (usual port -> software), whether listening or not.
        self.running: dict[str, dict[int, Software]] = {}
        self.quiet: set[str] = set()
        self.listeners: Listeners | None = None
        self.step_index = 0

    def start(self) -> None:
        busy = wildcard_listening_ports() & set(DEMO_PORTS)
        if busy:
            raise FleetError(
                f"Port(s) {', '.join(map(str, sorted(busy)))} are taken by a program listening on every address "
                "of this machine; stop it to run the demo."
            )
        self.listeners = Listeners()
        try:
            for server in SERVERS:
                self.running[server.name] = {}
                for usual, software in server.services.items():
                    self._open(server.name, usual, software)
        except FleetError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.listeners is not None:
            self.listeners.close_all()
            self.listeners = None

    def address(self, name: str) -> str:
        return self.addresses[name]

    def next_step(self) -> Step:
        """Apply the next step of the script (it repeats) and return it."""
        step = STEPS[self.step_index % len(STEPS)]
        self.apply(step)
        self.step_index += 1
        return step

    def apply(self, step: Step) -> None:
        for name, usual in step.closes:
            self._close(name, usual)
        for name, usual, software in step.opens:
            if usual in self.running[name]:
                self._close(name, usual)
            self._open(name, usual, software)
        if step.quiet:
            for usual in list(self.running[step.quiet]):
                self.listeners.close(self.address(step.quiet), demo_port(usual))
            self.quiet.add(step.quiet)
        if step.back:
            self.quiet.discard(step.back)
            for usual, software in self.running[step.back].items():
                self._listen(step.back, usual, software)

    def open_ports(self) -> set[tuple[str, int]]:
        """(address, port) of every listener: what a scan should find open."""
        return self.listeners.open_ports if self.listeners else set()

    def describe(self) -> Iterator[str]:
        """One line per server: name, address and what listens there."""
        for server in SERVERS:
            running = self.running.get(server.name, {})
            what = ", ".join(
                f"{software.service} {demo_port(usual)} ({software.label})"
                for usual, software in sorted(running.items())
            )
            state = " [quiet]" if server.name in self.quiet else ""
            yield f"{server.name:8} {self.address(server.name):15} {what or 'nothing'}{state}"

    def _open(self, name: str, usual: int, software: Software) -> None:
        self.running[name][usual] = software
        if name not in self.quiet:
            self._listen(name, usual, software)

    def _close(self, name: str, usual: int) -> None:
        self.running[name].pop(usual)
        if name not in self.quiet:
            self.listeners.close(self.address(name), demo_port(usual))

    def _listen(self, name: str, usual: int, software: Software) -> None:
        address, port = self.address(name), demo_port(usual)
        try:
            self.listeners.open(
                address, port, software.banner or None, reply=software.reply or None, tls=software.tls_context()
            )
        except OSError as error:
            raise FleetError(
                f"Could not listen on {address}:{port} ({error.strerror}); is another demo running? "
                "Use --first-address to place the fleet elsewhere in 127.0.0.0/8."
            ) from None
