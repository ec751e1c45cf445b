"""The vantage lab: the same hosts, scanned from several scanner locations.

PortWatch scans one host:port from several named vantage points (``dc1-app``,
``office-lan``...), and one location may reach a port that another cannot.
This lab builds that with network namespaces, as root, like tests/netns.py
(whose helpers it uses)::

    scanner ns "dc1-app"     198.18.10.1 ==veth== 198.18.10.254 \\
    scanner ns "office-lan"  198.18.11.1 ==veth== 198.18.11.254  > hosts ns: 198.18.100.2, .3 ... on lo
    ...                      (vantage i: 198.18.(10+i).0/24)    /

Why one link per vantage point (not one shared link): every packet that
reaches the hosts then carries its own vantage's scanner address as source,
and the hosts' replies go back on the link they came from by a plain
connected route, with no bridge, forwarding or policy routing to get wrong.

The test hosts are /32 addresses on the hosts' namespace's loopback, not on
any link: every scanner namespace routes 198.18.100.0/24 through its own link
(gateway .254) and has no other route, so nmap in it reaches the lab's hosts
and nothing else. (A ``dummy`` interface would do as well, but not every
kernel has the module; this one does not.)

Segmentation is emulated by nftables in the hosts' namespace, matching the
scanner's source address: ``ip saddr <scanner> ip daddr <host> tcp dport
<port> drop`` makes that port filtered from that vantage point only, and
``ip saddr <scanner> ip daddr <host> drop`` makes the host silent to it, so
nmap's host discovery reports it down. No ARP rule is needed (unlike
``NetnsLab.drop_host``): the hosts are routed, not on the scanner's link, so
a scanner only ever asks ARP for its gateway, which must keep answering for
the other hosts.

Only 198.18.0.0/15 (the benchmarking range) is used, only inside the lab's own
namespaces, whose names carry the process id and a time tag so that parallel
or leftover labs never collide. ``close()`` (or leaving the ``with`` block)
deletes the namespaces (and with them links, rules and listeners) and the
wrapper scripts.
"""

import os
import re
import subprocess
import time
from pathlib import Path

from tests.netns import _run, netns_unavailable_reason, start_listener, write_netns_wrapper

__all__ = ["HOSTS_NETWORK", "VantageLab", "netns_unavailable_reason"]

HOSTS_NETWORK = "198.18.100.0/24"
FIRST_LINK = 10  # vantage i's link is 198.18.(FIRST_LINK + i).0/24
MAX_VANTAGES = 100 - FIRST_LINK  # the links stay below the hosts' 198.18.100.0/24
TABLE = "pwvlab"


def _free_tag() -> str:
    """Process id and a millisecond count, moved on past any namespace that has it already."""
    taken = _run("ip", "netns", "list").stdout
    start = int(time.time() * 1000)
    for step in range(1000):
        tag = f"{os.getpid() % 10000:04d}{(start + step) % 1000:03d}"
        if f"-{tag}" not in taken:
            return tag
    raise RuntimeError("no free namespace tag for the vantage lab")


class VantageLab:
    """One hosts' namespace and one scanner namespace per vantage point (see the module docstring)."""

    def __init__(self, workdir: Path, vantages: list[str], hosts: int = 3):
        if len(vantages) < 2 or len(set(vantages)) != len(vantages):
            raise ValueError(f"a vantage lab needs two or more distinct vantage names, not {vantages!r}")
        if len(vantages) > MAX_VANTAGES:
            raise ValueError(f"a vantage lab has at most {MAX_VANTAGES} vantage points")
        if not 1 <= hosts <= 253:
            raise ValueError("a vantage lab has 1 to 253 hosts")
        self.tag = tag = _free_tag()
        self.workdir = Path(workdir)
        self.vantages = list(vantages)
        self.addresses = [f"198.18.100.{index}" for index in range(2, 2 + hosts)]
        self.hosts_ns = f"pwvh-{tag}"
        self._scan_ns = {name: f"pwv{i}-{tag}" for i, name in enumerate(vantages)}
        self._links = {name: (f"pv{i}s{tag}", f"pv{i}h{tag}") for i, name in enumerate(vantages)}
        self._scanner = {name: f"198.18.{FIRST_LINK + i}.1" for i, name in enumerate(vantages)}
        self._gateway = {name: f"198.18.{FIRST_LINK + i}.254" for i, name in enumerate(vantages)}
        self._created: list[str] = []  # namespaces this lab made: only these are deleted
        self._wrappers: dict[str, Path] = {}
        self._rules: dict[tuple, int] = {}  # (kind, address, port, vantage) -> nftables rule handle
        self.listeners: list[subprocess.Popen] = []
        try:
            self._build()
            for i, name in enumerate(vantages):
                safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
                path = self.workdir / f"nmap-{tag}-{i}-{safe}"
                self._wrappers[name] = write_netns_wrapper(path, self._scan_ns[name])
        except BaseException:
            self.close()
            raise

    # --- building ------------------------------------------------------------

    def _add_namespace(self, namespace: str) -> None:
        _run("ip", "netns", "add", namespace)
        self._created.append(namespace)
        _run("ip", "-n", namespace, "link", "set", "lo", "up")

    def _build(self) -> None:
        self._add_namespace(self.hosts_ns)
        for address in self.addresses:
            _run("ip", "-n", self.hosts_ns, "addr", "add", f"{address}/32", "dev", "lo")
        for name in self.vantages:
            scan_ns, (scan_end, hosts_end) = self._scan_ns[name], self._links[name]
            self._add_namespace(scan_ns)
            # Made inside their namespaces at once: the root namespace never sees the names.
            _run(
                "ip", "link", "add", scan_end, "netns", scan_ns, "type", "veth",
                "peer", "name", hosts_end, "netns", self.hosts_ns,
            )  # fmt: skip
            _run("ip", "-n", scan_ns, "addr", "add", f"{self._scanner[name]}/24", "dev", scan_end)
            _run("ip", "-n", self.hosts_ns, "addr", "add", f"{self._gateway[name]}/24", "dev", hosts_end)
            _run("ip", "-n", scan_ns, "link", "set", scan_end, "up")
            _run("ip", "-n", self.hosts_ns, "link", "set", hosts_end, "up")
            _run("ip", "-n", scan_ns, "route", "add", HOSTS_NETWORK, "via", self._gateway[name])
        self._nft(
            f"add table inet {TABLE}",
            f"add chain inet {TABLE} input {{ type filter hook input priority 0 ; policy accept ; }}",
        )

    def _nft(self, *commands: str, echo: bool = False) -> str:
        options = ("--echo", "--handle") if echo else ()
        return _run("ip", "netns", "exec", self.hosts_ns, "nft", *options, "; ".join(commands)).stdout

    # --- names -----------------------------------------------------------------

    @property
    def namespaces(self) -> list[str]:
        """Every namespace of the lab: the hosts' first, then one per vantage point."""
        return [self.hosts_ns, *self._scan_ns.values()]

    def scanner_ns(self, vantage: str) -> str:
        return self._scan_ns[self._vantage(vantage)]

    def scanner_address(self, vantage: str) -> str:
        """The source address of that vantage point's scans, as the hosts see it."""
        return self._scanner[self._vantage(vantage)]

    def nmap_path(self, vantage: str) -> Path:
        """An executable that runs nmap inside that vantage point's namespace (for NMAP_PATH)."""
        return self._wrappers[self._vantage(vantage)]

    def address(self, host: int | str) -> str:
        """A lab host's address from its index in ``addresses`` or the address itself; nothing else."""
        if isinstance(host, int):
            return self.addresses[host]
        if host not in self.addresses:
            raise ValueError(f"{host} is not one of this lab's hosts {self.addresses}")
        return host

    def _vantage(self, vantage: str) -> str:
        if vantage not in self._scan_ns:
            raise KeyError(f"no vantage point {vantage!r} in this lab (it has {self.vantages})")
        return vantage

    # --- what the hosts run and let through --------------------------------------

    def listen(self, host: int | str, *ports: int) -> None:
        """Open TCP listeners on a lab host, inside the hosts' namespace."""
        self.listeners.append(start_listener(self.hosts_ns, self.address(host), ports))

    def drop(self, port: int, *, host: int | str, from_vantage: str | None = None) -> None:
        """Drop TCP to host:port coming from that vantage point (from every one if None): "filtered" there."""
        address = self.address(host)
        self._add_rule(("port", address, port, from_vantage), f"ip daddr {address} tcp dport {port}")

    def allow(self, port: int, *, host: int | str, from_vantage: str | None = None) -> None:
        """Remove the rule ``drop`` added with the same arguments."""
        self._delete_rule(("port", self.address(host), port, from_vantage))

    def unreachable(self, host: int | str, *, from_vantage: str | None = None) -> None:
        """Drop every packet to the host from that vantage point (from every one if None): down there."""
        address = self.address(host)
        self._add_rule(("host", address, None, from_vantage), f"ip daddr {address}")

    def reachable(self, host: int | str, *, from_vantage: str | None = None) -> None:
        """Remove the rule ``unreachable`` added with the same arguments."""
        self._delete_rule(("host", self.address(host), None, from_vantage))

    def restore(self) -> None:
        """Remove every rule ``drop`` and ``unreachable`` added: every host reachable from everywhere."""
        self._nft(f"flush chain inet {TABLE} input")
        self._rules.clear()

    @property
    def rules(self) -> list[tuple]:
        """The rules in force, as (kind, address, port, vantage) with kind "port" or "host"."""
        return list(self._rules)

    def _add_rule(self, key: tuple, match: str) -> None:
        if key in self._rules:
            return
        vantage = key[3]
        source = "" if vantage is None else f"ip saddr {self.scanner_address(vantage)} "
        echoed = self._nft(f"add rule inet {TABLE} input {source}{match} drop", echo=True)
        handle = re.search(r"# handle (\d+)", echoed)
        if handle is None:
            raise RuntimeError(f"nft gave no handle for the new rule: {echoed!r}")
        self._rules[key] = int(handle.group(1))

    def _delete_rule(self, key: tuple) -> None:
        if key[3] is not None:
            self._vantage(key[3])
        if key not in self._rules:
            raise KeyError(f"no such rule in force: {key} (in force: {self.rules})")
        self._nft(f"delete rule inet {TABLE} input handle {self._rules.pop(key)}")

    # --- the end -----------------------------------------------------------------

    def close(self) -> None:
        """Stop the listeners, delete the namespaces (their links and rules go with them) and the wrappers."""
        for process in self.listeners:
            process.kill()
            process.wait()
        self.listeners.clear()
        for namespace in reversed(self._created):
            _run("ip", "netns", "del", namespace, check=False)
        self._created.clear()
        for path in self._wrappers.values():
            path.unlink(missing_ok=True)
        self._wrappers.clear()
        self._rules.clear()

    def __enter__(self) -> "VantageLab":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
