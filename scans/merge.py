"""One address listed more than once in a scan: its entries merged into one observation.

Real scanners do this. nmap scans (and lists) an address once per target that
names it, so ``www.example.org`` and ``example.org`` resolving to one address
give two ``<host>`` entries; masscan writes one ``<host>`` (or JSON record)
per open port, and one more per banner. Refusing such a file would refuse
what the tools really wrote, so the entries are merged, by one rule, wherever
observations meet the diff engine (imports of either scanner, scan chunks,
every ingest engine).

The rule (pure functions, no database):

- **up** if any entry is up. An entry that is down adds only its hostnames:
  the other entry shows the address answered.
- **hostnames**: united, in the order they first appear (at most
  ``MERGED_HOSTNAMES_MAX``).
- **complete** entries are those of an up host that nmap did not give up on
  (not ``timedout``). The merged host **timed out** only if it is up and no
  entry is complete: one complete observation vouches for the host's ports.
- **ports**, each (protocol, port) on its own: the more complete observation
  wins, in this order:
  1. trusted before untrusted: an observation is trusted when its entry is
     complete, or when the port is open (what a host nmap gave up on found
     open is true; what it did not find says nothing). When the merged host
     is complete, untrusted observations (closed or filtered ports of an
     entry that timed out) are dropped;
  2. the more definite state: open, then closed (the host answered with a
     reset), then filtered (no answer: the weakest word);
  3. a service identified by version detection, then one with a product,
     version or extra information, then one with a name;
  4. the first one seen.
  Script outputs of every observation of the port are united (the winner's
  first; at most ``MERGED_SCRIPTS_MAX``).
- A port one entry lists and another only summarises (nmap's
  ``<extraports>``) keeps the listing: an open port is always listed, so the
  summary could only turn a listed "filtered" into "closed", and the weaker
  word is the safer one.
- **summaries** of the unlisted probed ports (complete entries only): the same
  summary everywhere is kept; otherwise each port takes the most definite
  state any summary gives it (needs the probed port set to spell out nmap's
  "every other port"). Where that cannot be worked out, or would take more
  than ``MERGED_SUMMARY_RANGES_MAX`` ranges, the merged host has no summary:
  its unlisted ports are not observed, never closed.

masscan writes no status, no summaries and no closed ports (PortWatch drops
them): its merged hosts are up, with the union of the open ports and banners.

``HostMerge`` folds entries one at a time (a host listed a thousand times costs
a thousand small steps, not a thousand copies of its port list).
"""

from collections.abc import Iterable, Iterator, Mapping

from inventory.choices import PortState
from inventory.ports import PortSet
from scans.constants import MERGED_HOSTNAMES_MAX, MERGED_SCRIPTS_MAX, MERGED_SUMMARY_RANGES_MAX
from scans.nmap_xml import ALL_PROTOCOLS, HostObservation, PortObservation

# How definite a state is: a reply (open, closed) says more than silence.
STATE_RANK = {PortState.OPEN.value: 3, PortState.CLOSED.value: 2, PortState.FILTERED.value: 1}

Summary = tuple[tuple[str, str, PortSet], ...]


def _port_rank(port: PortObservation, trusted: bool) -> tuple:
    return (
        trusted,
        STATE_RANK.get(port.state, 0),
        port.identified,
        bool(port.product or port.version or port.extrainfo),
        bool(port.name),
    )


class HostMerge:
    """The entries of one address, folded into one observation (see the module docstring)."""

    def __init__(self, address: str, probed: Mapping[str, PortSet] | None = None):
        self.address = address
        self._probed = probed
        self._up = False
        self._any_complete = False
        self._all_timed_out = True
        self._hostnames: dict[str, None] = {}
        # (protocol, port) -> (rank, observation, united scripts)
        self._ports: dict[tuple[str, int], tuple[tuple, PortObservation, dict[str, str]]] = {}
        self._summary: Summary | None = None  # None: no complete entry yet
        self._summary_known = True
        self.entries = 0

    def add(self, entry: HostObservation) -> "HostMerge":
        self.entries += 1
        for name in entry.hostnames:
            if len(self._hostnames) >= MERGED_HOSTNAMES_MAX:
                break
            self._hostnames.setdefault(name)
        self._all_timed_out = self._all_timed_out and entry.timed_out
        if not entry.up:
            return self
        self._up = True
        complete = not entry.timed_out
        for port in entry.ports:
            key = (port.protocol, port.port)
            rank = _port_rank(port, complete or port.state == PortState.OPEN)
            held = self._ports.get(key)
            if held is None:
                self._ports[key] = (rank, port, dict(port.scripts))
                continue
            held_rank, held_port, scripts = held
            if rank > held_rank:
                scripts = {**dict(port.scripts), **scripts} if port.scripts else scripts
                kept = held_port.certificate
                held_rank, held_port = rank, port
                if kept and not port.certificate:
                    held_port = port._replace(certificate=kept)
            else:
                for script, output in port.scripts:
                    scripts.setdefault(script, output)
                if port.certificate and not held_port.certificate:
                    # Like a script output: the other entry's certificate, when this one has none.
                    held_port = held_port._replace(certificate=port.certificate)
            while len(scripts) > MERGED_SCRIPTS_MAX:
                scripts.pop(next(reversed(scripts)))
            self._ports[key] = (held_rank, held_port, scripts)
        if complete:
            self._any_complete = True
            self._add_summary(entry.other_ports)
        return self

    def _add_summary(self, summary: Summary) -> None:
        if self._summary is None:
            self._summary = summary
        elif self._summary_known and summary != self._summary:
            merged = merge_summaries(self._summary, summary, self._probed)
            if merged is None:
                self._summary_known = False
            else:
                self._summary = merged

    def result(self) -> HostObservation:
        ports = []
        for rank, port, scripts in self._ports.values():
            trusted = rank[0]
            if self._any_complete and not trusted:
                continue  # a closed or filtered port of an entry nmap gave up on
            united = tuple(scripts.items())
            ports.append(port if united == port.scripts else port._replace(scripts=united))
        summary = self._summary if (self._summary is not None and self._summary_known) else ()
        return HostObservation(
            self.address,
            self._up,
            tuple(self._hostnames),
            tuple(ports),
            summary,
            (self._up and not self._any_complete) or (not self._up and self._all_timed_out),
        )


def merge_hosts(
    first: HostObservation, *more: HostObservation, probed: Mapping[str, PortSet] | None = None
) -> HostObservation:
    """Two or more entries of one address as one observation."""
    merge = HostMerge(first.address, probed).add(first)
    for entry in more:
        if entry.address != first.address:
            raise ValueError(f"{entry.address} is not {first.address}")
        merge.add(entry)
    return merge.result()


def merge_duplicates(
    observations: Iterable[HostObservation], probed: Mapping[str, PortSet] | None = None
) -> list[HostObservation]:
    """Observations with each address once, in the order addresses first appear.

    For observations already held in memory (a scan chunk's): an address
    listed once is passed through as it is.
    """
    merges: dict[str, HostObservation | HostMerge] = {}
    for observation in observations:
        held = merges.get(observation.address)
        if held is None:
            merges[observation.address] = observation
        elif isinstance(held, HostMerge):
            held.add(observation)
        else:
            merges[observation.address] = HostMerge(observation.address, probed).add(held).add(observation)
    return [held.result() if isinstance(held, HostMerge) else held for held in merges.values()]


def merge_listed(
    entries: Iterable[HostObservation], repeated: Mapping[str, int], probed: Mapping[str, PortSet] | None = None
) -> Iterator[HostObservation]:
    """Stream ``entries``, merging the addresses ``repeated`` names (address -> number of entries).

    An address listed once is yielded as it is read; one listed several
    times is held (as a ``HostMerge``) until its last entry, then yielded
    merged. Memory follows the repeated addresses whose entries are still
    to come, not the file. ``repeated`` comes from a first pass over the same
    file (``repeated_addresses``).
    """
    pending: dict[str, HostMerge] = {}
    for entry in entries:
        total = repeated.get(entry.address)
        if total is None:
            yield entry
            continue
        merge = pending.get(entry.address)
        if merge is None:
            merge = pending[entry.address] = HostMerge(entry.address, probed)
        merge.add(entry)
        if merge.entries >= total:
            del pending[entry.address]
            yield merge.result()
    # Only if the second pass read fewer entries than the first counted
    # (the file changed in between): what was read is still merged.
    for merge in pending.values():
        yield merge.result()


def repeated_addresses(entries: Iterable[HostObservation]) -> dict[str, int]:
    """Address -> number of entries, for the addresses listed more than once.

    Keeps the set of addresses seen (as the duplicate check of a plain read
    does) and a count for the repeated ones only.
    """
    seen: set[str] = set()
    repeated: dict[str, int] = {}
    for entry in entries:
        address = entry.address
        if address in seen:
            repeated[address] = repeated.get(address, 1) + 1
        else:
            seen.add(address)
    return repeated


# --- summaries of unlisted ports ----------------------------------------------------------


def merge_summaries(first: Summary, second: Summary, probed: Mapping[str, PortSet] | None) -> Summary | None:
    """Each unlisted probed port in the most definite state either summary gives it.

    None when that cannot be said (nmap's "every other port" without the
    probed port set to spell it out) or would take too many ranges: then the
    unlisted ports are not observed.
    """
    if first == second:
        return first
    if not first or not second:
        # One complete entry said nothing about its unlisted ports, the
        # other did: what the other said is all there is to know.
        return first or second
    everything = [*first, *second]
    if all(protocol == ALL_PROTOCOLS for protocol, _, _ in everything) and len(first) == len(second) == 1:
        (_, state_a, _), (_, state_b, _) = first[0], second[0]
        strongest = max(state_a, state_b, key=lambda state: STATE_RANK.get(state, 0))
        return ((ALL_PROTOCOLS, strongest, PortSet()),)
    # Spell every summary out per protocol, then sweep.
    intervals: dict[str, list[tuple[int, int, str]]] = {}
    for protocol, state, ports in everything:
        if protocol == ALL_PROTOCOLS:
            if not probed:
                return None
            for name, probed_ports in probed.items():
                intervals.setdefault(name, []).extend((low, high, state) for low, high in probed_ports.ranges)
        else:
            intervals.setdefault(protocol, []).extend((low, high, state) for low, high in ports.ranges)
    if sum(len(pieces) for pieces in intervals.values()) > 2 * MERGED_SUMMARY_RANGES_MAX:
        return None
    result = []
    total = 0
    for protocol in sorted(intervals):
        by_state = _strongest_per_port(intervals[protocol])
        for state in sorted(by_state, key=lambda state: -STATE_RANK.get(state, 0)):
            ranges = by_state[state]
            total += len(ranges)
            if total > MERGED_SUMMARY_RANGES_MAX:
                return None
            result.append((protocol, state, PortSet(ranges)))
    return tuple(result)


def _strongest_per_port(intervals: list[tuple[int, int, str]]) -> dict[str, list[tuple[int, int]]]:
    """Cut overlapping (low, high, state) ranges into pieces, each in its most definite state (a sweep)."""
    events = sorted(
        [(low, 1, state) for low, _, state in intervals] + [(high + 1, -1, state) for _, high, state in intervals]
    )
    open_count: dict[str, int] = {}
    by_state: dict[str, list[tuple[int, int]]] = {}
    for index, (position, step, state) in enumerate(events):
        open_count[state] = open_count.get(state, 0) + step
        following = events[index + 1][0] if index + 1 < len(events) else None
        if following is None or following == position:
            continue  # more events at this position first
        covering = [name for name, count in open_count.items() if count > 0]
        if not covering:
            continue
        strongest = max(covering, key=lambda name: STATE_RANK.get(name, 0))
        pieces = by_state.setdefault(strongest, [])
        if pieces and pieces[-1][1] + 1 == position:
            pieces[-1] = (pieces[-1][0], following - 1)
        else:
            pieces.append((position, following - 1))
    return by_state
