"""The sparse-network lab of ``bench.discovery``: a /20 with a few live hosts, in namespaces.

    scanner ns  198.18.15.1/24 ==veth== 198.18.15.254/24  hosts ns: the live hosts, /32 each on lo
    (route 198.18.16.0/20 via .254; masscan answers for 198.18.15.250 with its own stack)

The scanner reaches the /20 through the hosts' namespace, which owns only
the live addresses: packets to any other address of the /20 go unanswered
(no forwarding there), as on a sparse network. The live hosts are /32
addresses on one interface and their listeners one process, so building
64 hosts x 8 listeners costs a few dozen commands. Only 198.18.0.0/15 (the
benchmarking range), only inside these namespaces; ``close()`` deletes them,
and with them the listeners.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.netns import LISTENER, _run

NETWORK = "198.18.16.0/20"
LINK_SCANNER, LINK_GATEWAY, MASSCAN_ADDRESS = "198.18.15.1", "198.18.15.254", "198.18.15.250"


class SparseLab:
    def __init__(self, workdir: Path, live: dict[str, list[int]]):
        tag = f"{os.getpid() % 10000:04d}{int(time.time() * 1000) % 1000:03d}"
        self.scan_ns, self.hosts_ns = f"pwds-{tag}", f"pwdh-{tag}"
        self.scan_end, self.hosts_end = f"pwds{tag}", f"pwdh{tag}"
        self.workdir = workdir
        self.listener: subprocess.Popen | None = None
        self._created: list[str] = []
        try:
            self._build(live)
        except BaseException:
            self.close()
            raise

    def _build(self, live: dict[str, list[int]]) -> None:
        for namespace in (self.scan_ns, self.hosts_ns):
            _run("ip", "netns", "add", namespace)
            self._created.append(namespace)
            _run("ip", "-n", namespace, "link", "set", "lo", "up")
        _run(
            "ip", "link", "add", self.scan_end, "netns", self.scan_ns, "type", "veth",
            "peer", "name", self.hosts_end, "netns", self.hosts_ns,
        )  # fmt: skip
        _run("ip", "-n", self.scan_ns, "addr", "add", f"{LINK_SCANNER}/24", "dev", self.scan_end)
        _run("ip", "-n", self.hosts_ns, "addr", "add", f"{LINK_GATEWAY}/24", "dev", self.hosts_end)
        _run("ip", "-n", self.scan_ns, "link", "set", self.scan_end, "up")
        _run("ip", "-n", self.hosts_ns, "link", "set", self.hosts_end, "up")
        _run("ip", "-n", self.scan_ns, "route", "add", NETWORK, "via", LINK_GATEWAY)
        batch = self.workdir / "addresses.batch"
        batch.write_text("".join(f"addr add {address}/32 dev lo\n" for address in live))
        _run("ip", "-n", self.hosts_ns, "-batch", str(batch))
        specs = [f"{address}:{port}" for address, ports in live.items() for port in ports]
        self.listener = subprocess.Popen(
            ["ip", "netns", "exec", self.hosts_ns, sys.executable, str(LISTENER), *specs],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.listener.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"the lab's listeners did not start: {line}{self.listener.stdout.read()}")

    def drop_closed_ports(self, live: dict[str, list[int]]) -> None:
        """A firewall on every live host: TCP to anything but its listeners is dropped (filtered, not closed)."""
        elements = ", ".join(f"{address} . {port}" for address, ports in live.items() for port in ports)
        rules = self.workdir / "filter.nft"
        rules.write_text(
            "table inet pwdisc {\n"
            f"  set listening {{ type ipv4_addr . inet_service; elements = {{ {elements} }} }}\n"
            "  chain input {\n"
            "    type filter hook input priority 0; policy accept;\n"
            f"    ip daddr {NETWORK} ip daddr . tcp dport @listening accept\n"
            f"    ip daddr {NETWORK} meta l4proto tcp drop\n"
            "  }\n"
            "}\n"
        )
        _run("ip", "netns", "exec", self.hosts_ns, "nft", "-f", str(rules))

    def router_mac(self) -> str:
        link = _run("ip", "-n", self.hosts_ns, "-o", "link", "show", self.hosts_end).stdout
        return link.split("link/ether", 1)[1].split()[0]

    def wrapper(self, program: str) -> Path:
        """A script to give as NMAP_PATH or MASSCAN_PATH: ``program`` run inside the scanner's namespace."""
        extra = ""
        if program == "masscan":
            extra = f" --adapter {self.scan_end} --adapter-ip {MASSCAN_ADDRESS} --router-mac {self.router_mac()}"
        path = self.workdir / f"{program}-in-netns"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.scan_ns} {program}{extra} "$@"\n')
        path.chmod(0o755)
        return path

    def close(self) -> None:
        if self.listener is not None:
            self.listener.kill()
            self.listener.wait()
        for namespace in self._created:
            _run("ip", "netns", "del", namespace, check=False)
