"""The loopback lab: real TCP listeners on 127.77.x.y for real nmap scans.

Linux routes all of 127.0.0.0/8 to ``lo``, so every test gets its own /24
(127.77.N.0/24) and can bind listeners on up to 254 distinct "hosts". Ports
are taken from LAB_PORTS, and scans of the lab probe only that range, so a
service listening on a wildcard address of the test machine never shows up.
Nothing outside 127.0.0.0/8 is ever scanned from here.
"""

import itertools
import os
import selectors
import socket
import threading
from pathlib import Path

LAB_PORTS = range(41000, 42000)
LAB_PORT_SPEC = f"{LAB_PORTS.start}-{LAB_PORTS.stop - 1}"

# Each test takes the next /24; xdist workers start at different offsets.
_worker_offset = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0) * 60
_networks = itertools.cycle(range(1 + _worker_offset, 61 + _worker_offset))


def next_lab_prefix() -> str:
    return f"127.77.{next(_networks)}"


def wildcard_listening_ports() -> set[int]:
    """TCP ports something on this machine listens on for every address."""
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


class Listeners:
    """Listening sockets served by one thread: each connection is accepted,
    sent an optional banner (so nmap -sV can identify it) and closed."""

    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._sockets: dict[tuple[str, int], socket.socket] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="lab-listeners", daemon=True)
        self._thread.start()

    def open(self, host: str, port: int, banner: bytes | None = None) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(256)
        sock.setblocking(False)
        with self._lock:
            self._sockets[(host, port)] = sock
            self._selector.register(sock, selectors.EVENT_READ, banner)

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
                try:
                    if key.data:
                        conn.setblocking(True)
                        conn.settimeout(1)
                        conn.sendall(key.data)
                except OSError:
                    pass
                finally:
                    conn.close()
            if not events:
                self._stop.wait(0.05)


class LoopbackLab:
    """One test's /24 on loopback, with helpers to open and close ports."""

    def __init__(self):
        self.prefix = next_lab_prefix()
        self.listeners = Listeners()
        busy = wildcard_listening_ports() & set(LAB_PORTS)
        if busy:
            raise RuntimeError(f"ports {sorted(busy)} of the lab range are taken by wildcard listeners on this machine")

    def address(self, host: int) -> str:
        return f"{self.prefix}.{host}"

    def open(self, host: int, port: int, banner: bytes | None = None) -> None:
        self.listeners.open(self.address(host), port, banner)

    def close(self, host: int, port: int) -> None:
        self.listeners.close(self.address(host), port)

    def expected(self) -> set[tuple[str, int]]:
        return self.listeners.open_ports

    def stop(self) -> None:
        self.listeners.close_all()
