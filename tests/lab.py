"""The loopback lab: real TCP listeners on 127.77.x.y for real nmap scans.

Linux routes all of 127.0.0.0/8 to ``lo``, so every test gets its own /24
(127.77.N.0/24) and can bind listeners on up to 254 distinct "hosts". Ports
are taken from LAB_PORTS, and scans of the lab probe only that range, so a
service listening on a wildcard address of the test machine never shows up.
Nothing outside 127.0.0.0/8 is ever scanned from here.
"""

import itertools
import os

# The listeners are the product's (the demo fleet runs on them too); bench/
# imports them from here.
from scans.demo import Listeners, wildcard_listening_ports

LAB_PORTS = range(41000, 42000)
LAB_PORT_SPEC = f"{LAB_PORTS.start}-{LAB_PORTS.stop - 1}"

# Each test takes the next /24; xdist workers start at different offsets.
_worker_offset = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0) * 60
_networks = itertools.cycle(range(1 + _worker_offset, 61 + _worker_offset))


def next_lab_prefix() -> str:
    return f"127.77.{next(_networks)}"


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
