"""Confirmation re-probe: a second look before a change that would alert.

Before a chunk's changes are written, the ones that would alert or mislead
(a port opened, closed or filtered on a host already in the inventory) are
probed again with targeted nmap runs. A candidate the re-probe contradicts is left out of the
diff (not observed) instead of being recorded: a port that flickered during a
restart must not page anyone. The first scan and the re-probe have to agree.

Ports of a host discovered by this very scan are not re-probed: there is no
earlier state for them to contradict, and the discovery is itself the news.
This keeps a first scan of a network as fast as nmap alone.

nmap probes every listed host on every listed port, so candidates are packed
into runs whose cross product stays close to the number of candidates.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inventory.ports import PortSet
from scans.choices import ChangeKind
from scans.ingest.diff import Coverage, diff_hosts
from scans.ingest.orm import load_known
from scans.nmap_runner import run_nmap
from scans.nmap_xml import HostObservation, NmapXmlReader

logger = logging.getLogger(__name__)

Key = tuple[str, str, int]  # address, protocol, port
# Opened and closed alert; filtered is confirmed too, since a single lost
# answer (a lossy link) would otherwise record it, and the port's return then.
CONFIRMED_KINDS = (ChangeKind.PORT_OPENED, ChangeKind.PORT_CLOSED, ChangeKind.PORT_FILTERED)


@dataclass
class Confirmation:
    candidates: int = 0
    confirmed: int = 0
    refuted: int = 0
    unconfirmed: frozenset[Key] = frozenset()

    def as_dict(self) -> dict:
        return {"candidates": self.candidates, "confirmed": self.confirmed, "refuted": self.refuted}


def candidates(zone, coverage: Coverage, observations: list[HostObservation]) -> dict[Key, str]:
    """The changes this chunk would record that would alert: key -> expected state."""
    observed = {observation.address for observation in observations}
    silent = sorted(coverage.addresses - observed)
    known, _ = load_known(zone, sorted(observed | set(silent)))
    result = diff_hosts(coverage, known, observations, silent)
    discovered = {change.address for change in result.host_discovered}
    return {
        (change.address, change.protocol, change.port): change.after["state"]
        for change in result.changes()
        if change.kind in CONFIRMED_KINDS and change.address not in discovered
    }


# A run may probe this many more host:ports than it has candidates: one more
# nmap process costs about as much as a few thousand probes.
SPARE_PROBES = 4096


def plan_runs(keys: list[Key]) -> list[tuple[list[str], PortSet]]:
    """Pack candidates of one protocol into (hosts, ports) nmap runs.

    Hosts with the same candidate ports share a run; groups are merged while
    the merged run probes at most 4 x its candidates + SPARE_PROBES host:ports.
    """
    ports_of: dict[str, set[int]] = {}
    for address, _, port in keys:
        ports_of.setdefault(address, set()).add(port)
    groups: dict[frozenset[int], list[str]] = {}
    for address, ports in ports_of.items():
        groups.setdefault(frozenset(ports), []).append(address)
    runs: list[tuple[list[str], set[int], int]] = []
    for ports, hosts in sorted(groups.items(), key=lambda item: sorted(item[0])):
        wanted = len(ports) * len(hosts)
        if runs:
            run_hosts, run_ports, run_wanted = runs[-1]
            merged_ports = run_ports | ports
            cost = (len(run_hosts) + len(hosts)) * len(merged_ports)
            if cost <= 4 * (run_wanted + wanted) + SPARE_PROBES:
                runs[-1] = (run_hosts + hosts, merged_ports, run_wanted + wanted)
                continue
        runs.append((list(hosts), set(ports), wanted))
    return [(sorted(hosts), PortSet((port, port) for port in ports)) for hosts, ports, _ in runs]


def reprobe(
    expected: dict[Key, str],
    options_for: Callable[[PortSet], list[str]],
    workdir: Path,
    should_stop: Callable[[], bool],
) -> Confirmation:
    """Probe every candidate again; keep those whose state is seen twice."""
    if not expected:
        return Confirmation()
    seen: dict[Key, str] = {}
    for protocol in sorted({protocol for _, protocol, _ in expected}):
        keys = [key for key in expected if key[1] == protocol]
        for index, (hosts, ports) in enumerate(plan_runs(keys)):
            result = run_nmap(
                options_for(ports), hosts, workdir / f"reprobe-{protocol}-{index}", should_stop=should_stop
            )
            if not result.ok:
                # No second look: nothing may be concluded from the first one alone.
                logger.warning("confirmation re-probe failed (%s): %s", result.returncode, result.stderr)
                continue
            with open(result.xml_path, "rb") as xml:
                for observation in NmapXmlReader(xml).hosts():
                    seen.update(_states(observation, protocol, ports))
    unconfirmed = frozenset(key for key, state in expected.items() if seen.get(key) != state)
    confirmation = Confirmation(
        candidates=len(expected),
        confirmed=len(expected) - len(unconfirmed),
        refuted=len(unconfirmed),
        unconfirmed=unconfirmed,
    )
    if unconfirmed:
        logger.info(
            "re-probe refuted %d of %d candidate change(s): %s",
            len(unconfirmed),
            len(expected),
            sorted(unconfirmed)[:10],
        )
    return confirmation


def _states(observation: HostObservation, protocol: str, ports: PortSet) -> dict[Key, str]:
    if not observation.up:
        return {}
    states = {}
    for port in ports.ranges:
        for number in range(port[0], port[1] + 1):
            for other_protocol, state, other_ports in observation.other_ports:
                if other_protocol == "*" or (other_protocol == protocol and number in other_ports):
                    states[(observation.address, protocol, number)] = state
    for port in observation.ports:
        if port.protocol == protocol:
            states[(observation.address, protocol, port.port)] = port.state
    return states
