"""Parallel parsing: a large nmap XML file parsed by several processes, staged batch by batch.

Parsing is most of an import's CPU time, and PostgreSQL's diff of a batch
runs on another core: so a file over INGEST_PARALLEL_MIN_BYTES is cut into
fragments (``scans.nmap_xml.fragments``), child processes (forked, one per
CPU at a time) parse them into temporary files of COPY rows
(``copy_rows``), and this process, which holds the only connection and the
transaction, COPYs each fragment into the staging tables in turn for the
engine to diff while the next fragments are parsed. Children never touch
the database; they report through a pipe, and are killed if the import
stops early.

Memory stays flat whatever the file's size: a fragment is at most
FRAGMENT_MAX_BYTES (a parser holds its fragment's addresses, to find one
listed twice), and what this process keeps to find an address listed in two
fragments is 8 bytes a host (see ``_check_fragments``). That matters twice
over: every child is forked from this process, and a child's resident size
counts the pages it shares with its parent.
"""

import gc
import json
import logging
import math
import os
import select
import shutil
import signal
import tempfile
import traceback
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from inventory.ports import PortSet
from scans.ingest.postgres.copy_rows import copy_rows
from scans.ingest.postgres.staging import COPY_OBSERVATIONS, create_staging, stage_observations
from scans.nmap_xml import (
    HostListedTwice,
    NmapRunInfo,
    NmapXmlError,
    fragments,
    listed_twice,
    read_fragment,
)

logger = logging.getLogger(__name__)

# Niceness of the parser processes (see _parse_fragment_into).
PARSER_NICENESS = 10
# The largest fragment (about 37k hosts of nmap -p- output): what a parser holds does not grow with the file.
FRAGMENT_MAX_BYTES = 64 << 20


@dataclass
class Batch:
    seen: int
    up: int


def stage_file_batches(cursor, path: str, info: NmapRunInfo, parts: int | None = None) -> Iterator[Batch]:
    """Parse ``path`` and stage it batch by batch, for the caller to diff each.

    A large file is cut into fragments parsed by child processes (one per
    CPU at a time) into temporary files; while the caller diffs one batch in
    PostgreSQL, the next fragments are being parsed, so the CPUs stay busy.
    ``info`` receives the run information; completeness is checked at the end
    (NmapXmlError if the file is truncated or reports an error): the caller's
    transaction then rolls every batch back. An address listed twice, in one
    fragment or two, raises HostListedTwice as soon as it is seen: the caller
    rolls back what was staged and reads the file again, merging
    (``scans.ingest.imports``), so ordinary files pay nothing for the possibility.
    """
    if parts is None:
        parts = _parts(os.path.getsize(path))
    pieces = fragments(path, parts)
    logger.debug("%s: %d fragment(s)", path, len(pieces))
    if len(pieces) == 1:
        create_staging(cursor)
        yield Batch(*stage_observations(cursor, read_fragment(path, pieces[0], info)))
    else:
        yield from _parallel_batches(cursor, path, pieces, info)
    info.check_complete()


def _parts(size: int) -> int:
    """Two fragments per CPU (one parsed while the other is diffed), more for a file too large for that."""
    if size < settings.INGEST_PARALLEL_MIN_BYTES:
        return 1
    return max(2 * max(1, min(os.cpu_count() or 1, 8)), math.ceil(size / FRAGMENT_MAX_BYTES))


def _parallel_batches(cursor, path: str, pieces: list, info: NmapRunInfo) -> Iterator[Batch]:
    running = max(1, min(os.cpu_count() or 1, len(pieces)))
    workdir = tempfile.mkdtemp(prefix="portwatch-ingest-")
    # index -> (pid, data path, result pipe), for the children started and not yet reaped
    children: dict[int, tuple[int, str, int]] = {}
    payloads: dict[int, dict] = {}  # what finished children reported, by index
    # Each fragment's parser stops at a host listed twice in it; across
    # fragments, the hashes of the addresses each parser lists are compared here.
    seen = array("q")
    started = 0

    def start_next() -> None:
        nonlocal started
        index, started = started, started + 1
        data_path = os.path.join(workdir, f"{index}.copy")
        result_read, result_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the parser process: never touches the database
            os.close(result_read)
            _parse_fragment_into(path, pieces[index], data_path, result_write)
        os.close(result_write)
        children[index] = (pid, data_path, result_read)

    def collect(timeout: float | None) -> None:
        """Reap the children that have finished (waiting up to ``timeout``), starting one in each one's place.

        A child writes its report and exits, so a readable pipe means it is done. Starting
        the next fragment as soon as any child finishes, not when its batch's turn comes,
        keeps both CPUs parsing while this process waits.
        """
        by_fd = {fd: index for index, (_, _, fd) in children.items()}
        ready, _, _ = select.select(list(by_fd), [], [], timeout)
        for fd in ready:
            index = by_fd[fd]
            pid, _, _ = children.pop(index)
            with os.fdopen(fd, "rb") as result:
                report = result.read()
            os.waitpid(pid, 0)
            payloads[index] = json.loads(report or b'{"error": "the parser process died"}')
            if started < len(pieces):
                start_next()

    try:
        while started < running:
            start_next()
        for index in range(len(pieces)):
            collect(0)  # those that finished while the previous batch was diffed
            while index not in payloads:
                collect(None)
            payload = payloads.pop(index)
            if "listed_twice" in payload:
                raise HostListedTwice(payload["listed_twice"])
            if "error" in payload:
                raise NmapXmlError(payload["error"])
            info.merge(_info_from(payload["info"]))
            data_path = os.path.join(workdir, f"{index}.copy")
            _check_fragments(workdir, index, seen)
            create_staging(cursor)
            with cursor.cursor.copy(COPY_OBSERVATIONS) as copy, open(data_path, "rb") as data:
                while block := data.read(1 << 20):
                    copy.write(block)
            os.unlink(data_path)
            yield Batch(payload["seen"], payload["up"])
    finally:
        for pid, _, result_read in children.values():  # only children not reaped yet
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            os.close(result_read)
        shutil.rmtree(workdir, ignore_errors=True)


def _check_fragments(workdir: str, index: int, seen: array) -> None:
    """Raise HostListedTwice if fragment ``index`` lists an address an earlier one did; add its hashes to ``seen``.

    The parsers write each address's hash (children are forked: ``hash()``
    gives the same number in all of them) and the addresses themselves; only
    the hashes are kept here, 8 bytes a host. Equal hashes are checked
    against the addresses, so a collision only costs that check.
    """
    hashes = array("q")
    with open(os.path.join(workdir, f"{index}.copy.hashes"), "rb") as data:
        hashes.frombytes(data.read())
    if not set(hashes).isdisjoint(seen):
        with open(os.path.join(workdir, f"{index}.copy.hosts")) as hosts:
            addresses = set(hosts.read().split())
        for earlier in range(index):
            with open(os.path.join(workdir, f"{earlier}.copy.hosts")) as hosts:
                for address in hosts:
                    if address.strip() in addresses:
                        raise listed_twice(address.strip())
    seen.extend(hashes)


def _parse_fragment_into(path: str, piece, data_path: str, result_fd: int) -> None:
    """Child process: parse one fragment into a file of COPY lines, then report."""
    status = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        # The database's work on the batches already parsed is what the
        # ingest waits for; parsers that yield the CPU to it (and to anything
        # else on the machine) keep it busy without slowing it down.
        os.nice(PARSER_NICENESS)
        # A short-lived process that makes no reference cycles worth finding:
        # the cyclic collector would only slow the parse down (by about 8%).
        gc.disable()
        info = NmapRunInfo()
        hashes = array("q")
        up = 0
        with open(data_path, "wb", buffering=1 << 20) as out, open(data_path + ".hosts", "w") as hosts:
            for observation in read_fragment(path, piece, info):
                address = observation.address
                hashes.append(hash(address))
                hosts.write(address + "\n")
                up += observation.up
                out.write(copy_rows(observation).encode())
        with open(data_path + ".hashes", "wb") as out:
            hashes.tofile(out)
        result = {"seen": len(hashes), "up": up, "info": _info_to(info)}
    except HostListedTwice as error:
        result = {"listed_twice": error.address}
    except NmapXmlError as error:
        result = {"error": str(error)}
    except BaseException:
        result = {"error": "The parser failed: " + traceback.format_exc(limit=3)}
        status = 1
    with os.fdopen(result_fd, "wb") as out:
        out.write(json.dumps(result).encode())
    os._exit(status)


def _info_to(info: NmapRunInfo) -> dict:
    return {
        "probed": {protocol: str(ports) for protocol, ports in info.probed.items()},
        "runstats_seen": info.runstats_seen,
        "finished": info.finished.isoformat() if info.finished else None,
        "exit_status": info.exit_status,
        "error_message": info.error_message,
        "hosts_up": info.hosts_up,
        "hosts_down": info.hosts_down,
    }


def _info_from(data: dict) -> NmapRunInfo:
    return NmapRunInfo(
        probed={protocol: PortSet.from_nmap(ports) for protocol, ports in data["probed"].items()},
        runstats_seen=data["runstats_seen"],
        finished=datetime.fromisoformat(data["finished"]) if data["finished"] else None,
        exit_status=data["exit_status"],
        error_message=data["error_message"],
        hosts_up=data["hosts_up"],
        hosts_down=data["hosts_down"],
    )
