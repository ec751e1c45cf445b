"""The engine interface: the few operations the entry points need of an engine.

Two engines write a scan's result with one semantics (``diff``, the
specification): the ORM engine (``orm``) runs the pure diff over bounded
batches of hosts, on any database; the PostgreSQL engine (``postgres``)
stages observations with COPY and diffs them in set-based SQL, much faster
on large scans. The entry points (``entry``) choose one per call and do the
rest themselves, whichever it is: the summary, settling what the inventory
derives from ports after each batch (``settle``), announcing the changes.

Each operation yields one ``Written`` per batch it has diffed and written,
and waits at the ``yield`` while the entry point settles that batch: an
engine may then overlap its next batch's parsing with the settling.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from django.db.models import QuerySet

from inventory.models import Zone
from scans.ingest.diff import Coverage
from scans.models import ScanChunk, ScanRun
from scans.nmap_xml import HostObservation, NmapRunInfo


@dataclass(frozen=True)
class Destination:
    """Where a scan's result goes: its run, chunk and zone, and the time written on its rows."""

    run: ScanRun
    chunk: ScanChunk
    zone: Zone
    now: datetime


@dataclass
class Written:
    """One batch an engine diffed and wrote."""

    seen: int
    up: int
    # Kinds of the changes the batch recorded.
    changes: Counter = field(default_factory=Counter)
    # The batch's changes are the chunk's changes after this id (0: all of them).
    after_change: int = 0
    # Hosts whose ports changed name without a recorded change (their risk may differ).
    renamed_hosts: QuerySet | None = None


class Engine(Protocol):
    def write(self, to: Destination, coverage: Coverage, observations: Iterable[HostObservation]) -> Iterator[Written]:
        """Diff and write the observations, then the covered addresses that were silent.

        Raises HostListedTwice at an address the observations list twice.
        """
        ...

    def write_file(self, to: Destination, path: str, info: NmapRunInfo, observed_at: datetime) -> Iterator[Written]:
        """Diff and write the nmap XML file at ``path`` (its coverage: the ports it says were probed).

        ``info`` fills in as the file is read. Raises NmapXmlError for a
        malformed or incomplete file (after the last batch, for a truncated
        one: the caller's transaction rolls every batch back) and
        HostListedTwice at an address the file lists twice.
        """
        ...
