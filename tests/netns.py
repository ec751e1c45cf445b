"""The namespace lab: hosts that can be filtered or made unreachable.

Loopback always answers, so it cannot show a filtered port or a host that
went quiet. This lab builds two network namespaces joined by a veth pair: the
scanner (198.18.0.1) in one, the test hosts (198.18.0.2 ...) in the other,
with an nftables table there to drop what a test wants dropped. nmap runs
inside the scanner namespace through a wrapper script given as NMAP_PATH;
masscan runs there too (``NetnsLab.masscan``), with its own TCP stack on an
address of the lab the kernel does not own.
198.18.0.0/15 is the benchmarking range: it exists only inside the lab.
Everything is removed at the end (deleting a namespace kills its listeners).
"""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

LAB_NETWORK = "198.18.0.0/24"
SCANNER = "198.18.0.1"
# masscan's own TCP stack answers for this address (the kernel must not own it).
MASSCAN_ADDRESS = "198.18.0.250"
LISTENER = Path(__file__).parent / "lab_listener.py"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result


def netns_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "the namespace lab needs root (ip netns, nftables)"
    for tool in ("ip", "nft", "nmap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 nftables nmap)"
    probe = f"pw-probe-{os.getpid()}"
    result = _run("ip", "netns", "add", probe, check=False)
    if result.returncode != 0:
        return f"this machine does not allow network namespaces: {result.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


def masscan_unavailable_reason() -> str | None:
    reason = netns_unavailable_reason()
    if reason:
        return reason
    if shutil.which("masscan") is None:
        return "masscan is not installed (apt-get install masscan)"
    return None


def write_netns_wrapper(path: Path, namespace: str, program: str = "nmap") -> Path:
    """Write an executable script that runs ``program`` inside ``namespace``; return its path."""
    path.write_text(f'#!/bin/sh\nexec ip netns exec {namespace} {program} "$@"\n')
    path.chmod(0o755)
    return path


def start_listener(namespace: str, address: str, ports: Iterable[int]) -> subprocess.Popen:
    """Start tests/lab_listener.py inside ``namespace`` on address:port for each port, once it listens."""
    process = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            sys.executable,
            str(LISTENER),
            *(f"{address}:{port}" for port in ports),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("ready"):
        process.kill()
        raise RuntimeError(f"lab listener did not start: {line}{process.stdout.read()}")
    return process


class NetnsLab:
    def __init__(self, workdir: Path, hosts: int = 3):
        tag = f"{os.getpid() % 10000:04d}{int(time.time() * 1000) % 1000:03d}"
        self.scan_ns, self.hosts_ns = f"pws-{tag}", f"pwh-{tag}"
        self.veth_scan, self.veth_hosts = f"pwa{tag}", f"pwb{tag}"
        self.addresses = [f"198.18.0.{index}" for index in range(2, 2 + hosts)]
        self.listeners: list[subprocess.Popen] = []
        self.workdir = workdir
        try:
            self._build()
        except Exception:
            self.destroy()
            raise
        self.nmap = write_netns_wrapper(workdir / "nmap-in-netns", self.scan_ns)

    def _build(self) -> None:
        _run("ip", "netns", "add", self.scan_ns)
        _run("ip", "netns", "add", self.hosts_ns)
        _run("ip", "link", "add", self.veth_scan, "type", "veth", "peer", "name", self.veth_hosts)
        _run("ip", "link", "set", self.veth_scan, "netns", self.scan_ns)
        _run("ip", "link", "set", self.veth_hosts, "netns", self.hosts_ns)
        _run("ip", "-n", self.scan_ns, "addr", "add", f"{SCANNER}/24", "dev", self.veth_scan)
        for address in self.addresses:
            _run("ip", "-n", self.hosts_ns, "addr", "add", f"{address}/24", "dev", self.veth_hosts)
        for namespace, device in ((self.scan_ns, self.veth_scan), (self.hosts_ns, self.veth_hosts)):
            _run("ip", "-n", namespace, "link", "set", "lo", "up")
            _run("ip", "-n", namespace, "link", "set", device, "up")
        self._nft(
            "add table inet pwlab",
            "add chain inet pwlab input { type filter hook input priority 0 ; policy accept ; }",
            "add table arp pwarp",
            "add chain arp pwarp input { type filter hook input priority 0 ; policy accept ; }",
        )

    def _nft(self, *commands: str) -> None:
        _run("ip", "netns", "exec", self.hosts_ns, "nft", "; ".join(commands))

    def listen(self, address: str, *ports: int) -> None:
        """Open TCP listeners on ``address`` inside the hosts' namespace."""
        self.listeners.append(start_listener(self.hosts_ns, address, ports))

    def filter_port(self, address: str, port: int) -> None:
        """Drop TCP packets to address:port: nmap sees no answer, so "filtered"."""
        self._nft(f"add rule inet pwlab input ip daddr {address} tcp dport {port} drop")

    def lossy_port(self, address: str, port: int, one_in: int = 2) -> None:
        """Drop one in ``one_in`` TCP packets to address:port, at random: a lossy link."""
        self._nft(f"add rule inet pwlab input ip daddr {address} tcp dport {port} numgen random mod {one_in} 0 drop")

    def drop_host(self, address: str) -> None:
        """Drop everything to ``address``, ARP included: nmap reports it down."""
        self._nft(
            f"add rule inet pwlab input ip daddr {address} drop",
            f"add rule arp pwarp input arp daddr ip {address} drop",
        )
        _run("ip", "-n", self.scan_ns, "neigh", "flush", "all")

    def redirect(self, address: str, port: int, to_port: int) -> None:
        """Answer address:port from to_port on the same host (a NAT rule, as a container's published port)."""
        self._nft(
            "add table ip pwnat",
            "add chain ip pwnat prerouting { type nat hook prerouting priority -100 ; }",
            f"add rule ip pwnat prerouting ip daddr {address} tcp dport {port} redirect to :{to_port}",
        )

    def ss(self, *options: str) -> str:
        """The real ``ss`` run in the hosts' namespace: what a host's cron job would post."""
        return _run("ip", "netns", "exec", self.hosts_ns, "ss", *(options or ("-Htulnp",))).stdout

    def router_mac(self) -> str:
        """The hosts' end of the link: masscan sends every packet to this MAC (the lab has no router)."""
        link = _run("ip", "-n", self.hosts_ns, "-o", "link", "show", self.veth_hosts).stdout
        return link.split("link/ether", 1)[1].split()[0]

    def masscan_path(self) -> Path:
        """A wrapper to give as MASSCAN_PATH: masscan inside the scanner's namespace, on its own address."""
        path = self.workdir / "masscan-in-netns"
        path.write_text(
            f"#!/bin/sh\nexec ip netns exec {self.scan_ns} masscan --adapter {self.veth_scan} "
            f'--adapter-ip {MASSCAN_ADDRESS} --router-mac {self.router_mac()} "$@"\n'
        )
        path.chmod(0o755)
        return path

    def count_packets_to(self, address: str) -> None:
        """Count every packet that reaches ``address`` (read with ``packets_to``)."""
        self._nft(f"add rule inet pwlab input ip daddr {address} counter")

    def packets_to(self, address: str) -> int:
        rules = _run("ip", "netns", "exec", self.hosts_ns, "nft", "list", "chain", "inet", "pwlab", "input").stdout
        for line in rules.splitlines():
            if f"ip daddr {address} counter packets" in line:
                return int(line.split("counter packets", 1)[1].split()[0])
        raise LookupError(f"no packet counter for {address}")

    def masscan(self, *args: str) -> str:
        """Run masscan in the scanner's namespace (it needs raw sockets); return its stderr."""
        result = _run(
            "ip", "netns", "exec", self.scan_ns, "masscan",
            "--adapter", self.veth_scan, "--adapter-ip", MASSCAN_ADDRESS, "--router-mac", self.router_mac(),
            "--rate", "2000", "--wait", "2", *args,
        )  # fmt: skip
        return result.stderr

    def destroy(self) -> None:
        for process in self.listeners:
            process.kill()
            process.wait()
        for namespace in (self.scan_ns, self.hosts_ns):
            _run("ip", "netns", "del", namespace, check=False)
