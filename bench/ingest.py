"""Ingest benchmark: PortWatch's ingest + diff of scans of up to 262k hosts against ndiff.

    make bench-ingest      (python -m tests.stack python -m bench.ingest)

For 4,096, 16,384, 65,536 and 262,144 hosts (``--sizes``), writes two synthetic nmap
XML scans (bench/nmap_synth.py: ten open TCP ports per host, all ports
probed, 2% of the ports moved in scan 2), ingests scan 1 into a fresh
PostgreSQL database, then times the ingest and diff of scan 2 (the same code
as ``manage.py import_nmap``) and, in the same run, ``ndiff scan1.xml
scan2.xml``. Peak memory is the peak of the summed resident memory of each
side's processes (PortWatch's importer and its parser processes; ndiff),
sampled every 50 ms (a cheap sampler: it shares the CPUs it measures).
PostgreSQL's own memory is not counted. CPU time is printed too: the
importer with its parser processes, and the PostgreSQL backend that serves
it (when the server is local), against ndiff's; unlike wall time, it does
not depend on how many cores are free. Like the time ratio, the cpu ratio
counts the import itself (from the call to its commit, parser processes
included), not the interpreter's and Django's start-up, which is printed
as the whole process's CPU time and ratio beside it. Checks that
PortWatch's opened/closed ports equal the port lines ndiff adds and removes.
Each size's files are deleted once it is measured (262,144 hosts write two
files of about 450 MB under the temporary directory). The last line reports
the largest size:

    ingest_vs_ndiff hosts=<n> time_ratio=<x> cpu_ratio=<y> memory_ratio=<z> changes_match=<yes|no>

(``cpu_ratio=n/a`` when PostgreSQL is not local: its CPU time cannot be read.)

Beside each size, the floor the parsing sets (``parse_floor``): the CPU time
of reading scan 2 into COPY rows in one process with no database (what the
parser processes do), and of the C ElementTree parse of it alone (the least
any reader built on Python's XML parser can spend), each against ndiff's CPU
time. The cpu ratio cannot fall below the first plus PostgreSQL's share.
"""

import argparse
import json
import logging
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

from bench.common import fresh_database, setup_django
from bench.nmap_synth import generate

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "portwatch_bench_ingest"


class PeakMemory:
    """Peak of the summed RSS of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib

    def _tree(self) -> list[int]:
        pids, queue = [], [self.pid]
        while queue:
            pid = queue.pop()
            pids.append(pid)
            try:
                # Children started by the main thread (as ours and ndiff's are).
                queue.extend(int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
            except OSError:
                pass
        return pids

    def _sample(self, interval: float) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in self._tree():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
                total += int(match.group(1)) if match else 0
            self.peak_kib = max(self.peak_kib, total)
            self._stop.wait(interval)


class Measured(NamedTuple):
    wall: float  # seconds
    peak_kib: int  # peak summed RSS
    cpu: float  # seconds of CPU, the process and its children
    stdout: str


def run_measured(
    argv: list[str], env: dict | None = None, stdout=subprocess.PIPE, ok_codes=(0,), stderr=subprocess.PIPE
) -> Measured:
    """Run a command; return its wall time, peak memory, CPU time and output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env, cwd=ROOT)
    sampler = PeakMemory(process.pid)
    out, err = process.communicate()
    elapsed = time.perf_counter() - start
    peak = sampler.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode not in ok_codes:
        raise SystemExit(f"{argv[0]} failed ({process.returncode}):\n{(err or b'').decode()[-3000:]}")
    # The process and the children it waited for (the parser processes).
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Measured(elapsed, peak, cpu, (out or b"").decode())


def ndiff_ports(text: str) -> tuple[set, set]:
    """(added, removed) (address, port) pairs from ndiff's text output."""
    added, removed, host = set(), set(), None
    for line in text.splitlines():
        header = re.match(r"^[ +-]?(\S+):$", line)
        if header:
            host = header.group(1)
            continue
        port = re.match(r"^([+-])(\d+)/tcp\s", line)
        if port and host:
            (added if port.group(1) == "+" else removed).add((host, int(port.group(2))))
    return added, removed


def import_one(path: str) -> None:
    """Child mode: import one file and print what happened, as JSON."""
    setup_django(os.environ["DATABASE_URL"], migrate=False)
    if os.environ.get("BENCH_PROFILE"):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("  %(relativeCreated)7.0f ms  %(message)s"))
        logger = logging.getLogger("scans.ingest")  # and every module of the package
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.propagate = False
    from django.db import connection

    from inventory.models import Zone
    from scans.ingest.imports import import_scan_file

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    backend_start = cpu_seconds_of(backend)
    cpu_start = own_cpu_seconds()
    start = time.perf_counter()
    logging.getLogger("scans.ingest").debug("import started")
    with open(path, "rb") as source:
        run = import_scan_file(source, zone=Zone.default(), name=Path(path).name, path=path)
    logging.getLogger("scans.ingest").debug("import committed")
    seconds = time.perf_counter() - start
    cpu = own_cpu_seconds() - cpu_start
    backend_end = cpu_seconds_of(backend)
    database_cpu = backend_end - backend_start if backend_start is not None and backend_end is not None else None
    print(json.dumps({"seconds": seconds, "cpu": cpu, "run": run.pk, "database_cpu": database_cpu}))


def parse_floor(path: str) -> None:
    """Child mode: the CPU time of reading ``path`` as the parser processes do, and of the bare parse, as JSON."""
    import gc
    import xml.etree.ElementTree as ET

    setup_django(os.environ["DATABASE_URL"], migrate=False)
    from scans.ingest.postgres.copy_rows import copy_rows
    from scans.nmap_xml import NmapRunInfo, fragments, read_fragment

    gc.disable()  # as in the parser processes (scans.ingest.postgres.parallel)
    start = own_cpu_seconds()
    info = NmapRunInfo()
    for piece in fragments(path, 1):
        for observation in read_fragment(path, piece, info):
            copy_rows(observation).encode()
    reader = own_cpu_seconds() - start
    start = own_cpu_seconds()
    for _, element in ET.iterparse(path):  # noqa: S314 - the benchmark's own synthetic file
        if element.tag == "host":
            element.clear()
    bare = own_cpu_seconds() - start
    print(json.dumps({"reader": reader, "bare": bare}))


def own_cpu_seconds() -> float:
    """CPU time of this process and of the children it has reaped (the parser processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cpu_seconds_of(pid: int) -> float | None:
    """CPU time (user + system) of a local process, or None (a server elsewhere, or not ours to read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(hosts: int, workdir: Path, database_url: str, *, profile: bool = False) -> dict:
    try:
        return _measure(hosts, workdir / f"h{hosts}", database_url, profile=profile)
    finally:
        shutil.rmtree(workdir / f"h{hosts}", ignore_errors=True)


def _measure(hosts: int, workdir: Path, database_url: str, *, profile: bool) -> dict:
    scan1, scan2, moved = generate(workdir, hosts)
    env = dict(os.environ, DATABASE_URL=database_url)

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE scans_change, scans_scanchunk, scans_scanrun, inventory_service, inventory_host CASCADE"
        )
    module = [sys.executable, "-m", "bench.ingest"]
    child = [*module, "--import-one"]
    run_measured([*child, str(scan1)], env)
    # Steady state before timing: what autovacuum would otherwise do in the
    # middle of the measured import (scan 1 wrote 720k rows).
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    if profile:
        print(f"{hosts} hosts, scan 2, SQL statements:", flush=True)
        pw = run_measured([*child, str(scan2)], dict(env, BENCH_PROFILE="1"), stderr=None)
    else:
        pw = run_measured([*child, str(scan2)], env)
    result = json.loads(pw.stdout.strip().splitlines()[-1])

    ndiff_out = workdir / "ndiff.txt"
    with open(ndiff_out, "wb") as handle:
        # ndiff, like diff, exits with 1 when the scans differ.
        nd = run_measured(["ndiff", str(scan1), str(scan2)], stdout=handle, ok_codes=(0, 1))
    added, removed = ndiff_ports(ndiff_out.read_text())
    floor = json.loads(run_measured([*module, "--parse-floor", str(scan2)], env).stdout.strip().splitlines()[-1])

    from scans.choices import ChangeKind
    from scans.models import Change

    changes = Change.objects.filter(run_id=result["run"])
    opened = set(changes.filter(kind=ChangeKind.PORT_OPENED).values_list("host__address", "port"))
    closed = set(changes.filter(kind=ChangeKind.PORT_CLOSED).values_list("host__address", "port"))
    database_cpu = result["database_cpu"]
    return {
        "hosts": hosts,
        "moved": moved,
        "pw_seconds": result["seconds"],
        "pw_process_seconds": pw.wall,
        "pw_peak_mib": pw.peak_kib / 1024,
        # CPU of the import (as pw_seconds: interpreter and Django start-up left out), and of the whole process
        "pw_cpu": result["cpu"],
        "pw_process_cpu": pw.cpu,
        "database_cpu": database_cpu,
        # importer, parsers and PostgreSQL against ndiff: independent of free cores
        "cpu_ratio": (result["cpu"] + database_cpu) / nd.cpu if database_cpu is not None else None,
        "process_cpu_ratio": (pw.cpu + database_cpu) / nd.cpu if database_cpu is not None else None,
        "ndiff_seconds": nd.wall,
        "ndiff_peak_mib": nd.peak_kib / 1024,
        "ndiff_cpu": nd.cpu,
        "reader_cpu": floor["reader"],
        "bare_parse_cpu": floor["bare"],
        "match": opened == added and closed == removed and len(opened) == moved,
        "opened": len(opened),
        "closed": len(closed),
        "ndiff_added": len(added),
        "ndiff_removed": len(removed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", default="4096,16384,65536,262144", help="comma-separated host counts; the largest is reported"
    )
    parser.add_argument("--import-one", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--parse-floor", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help="print each SQL statement's time (measured import)")
    args = parser.parse_args()
    if args.import_one:
        import_one(args.import_one)
        return
    if args.parse_floor:
        parse_floor(args.parse_floor)
        return
    if shutil.which("ndiff") is None:
        raise SystemExit("ndiff is not installed: apt-get install ndiff")
    database_url = fresh_database(DATABASE)
    setup_django(database_url)
    workdir = Path(tempfile.mkdtemp(prefix="portwatch-bench-ingest-"))
    results = []
    try:
        for hosts in [int(size) for size in args.sizes.split(",")]:
            result = measure(hosts, workdir, database_url, profile=args.profile)
            results.append(result)
            print(
                f"{hosts:>6} hosts: PortWatch ingest+diff {result['pw_seconds']:6.2f} s "
                f"(process {result['pw_process_seconds']:.2f} s), peak {result['pw_peak_mib']:6.1f} MiB | "
                f"ndiff {result['ndiff_seconds']:6.2f} s, peak {result['ndiff_peak_mib']:6.1f} MiB | "
                f"time ratio {result['pw_seconds'] / result['ndiff_seconds']:.3f}, "
                f"memory ratio {result['pw_peak_mib'] / result['ndiff_peak_mib']:.3f} | "
                f"opened {result['opened']} closed {result['closed']} vs ndiff +{result['ndiff_added']} "
                f"-{result['ndiff_removed']} ({'match' if result['match'] else 'MISMATCH'})",
                flush=True,
            )
            database = result["database_cpu"]
            print(
                f"{'':>6}        CPU: PortWatch {result['pw_cpu']:.2f} s (importer and parsers; "
                f"whole process {result['pw_process_cpu']:.2f} s)"
                + (
                    f" + PostgreSQL {database:.2f} s"
                    if database is not None
                    else " (PostgreSQL not measured: not local)"
                )
                + f" | ndiff {result['ndiff_cpu']:.2f} s"
                + (
                    f" | cpu ratio {result['cpu_ratio']:.3f} (whole process {result['process_cpu_ratio']:.3f})"
                    if result["cpu_ratio"] is not None
                    else ""
                ),
                flush=True,
            )
            print(
                f"{'':>6}        parse_floor: reading scan 2 alone {result['reader_cpu']:.2f} s CPU "
                f"(ratio {result['reader_cpu'] / result['ndiff_cpu']:.3f}), the bare ElementTree parse "
                f"{result['bare_parse_cpu']:.2f} s (ratio {result['bare_parse_cpu'] / result['ndiff_cpu']:.3f})",
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    largest = max(results, key=lambda result: result["hosts"])
    cpu_ratio = largest["cpu_ratio"]
    print(
        f"ingest_vs_ndiff hosts={largest['hosts']} time_ratio={largest['pw_seconds'] / largest['ndiff_seconds']:.3f} "
        f"cpu_ratio={'n/a' if cpu_ratio is None else f'{cpu_ratio:.3f}'} "
        f"memory_ratio={largest['pw_peak_mib'] / largest['ndiff_peak_mib']:.3f} "
        f"changes_match={'yes' if largest['match'] else 'no'}"
    )


if __name__ == "__main__":
    main()
