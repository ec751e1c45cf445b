"""Pipeline benchmark: a PortWatch run end to end against raw nmap.

    make bench-pipeline        (python -m tests.stack python -m bench.pipeline)

Builds a loopback lab of 254 hosts with 8 listeners each within ports 1-10000,
times raw nmap with the very options PortWatch uses, then a PortWatch run of
the same target from "scan now" (enqueued) to the run finalized with its
changes recorded, with one worker process and with two, each from an empty
inventory. Prints the times and the ratios; the last line is

    pipeline_vs_nmap ratio_1worker=<x> ratio_2workers=<y>

Only 127.0.0.0/8 is scanned.
"""

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import fresh_database, raise_open_files_limit, setup_django, timed

PREFIX = "127.88.0"
HOSTS = 254
LISTENERS_PER_HOST = 8
PORTS = "1-10000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=HOSTS)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    raise_open_files_limit()
    setup_django(fresh_database("portwatch_bench_pipeline"), SCAN_CONFIRM_CHANGES="1")

    from django.conf import settings

    from inventory.models import Host, Zone
    from inventory.ports import PortSet
    from scans.choices import ChangeKind, RunStatus
    from scans.models import Change, ScanProfile, ScanRun, ScanTarget
    from scans.nmap_runner import nmap_binary
    from scans.profiles import is_privileged, nmap_options
    from scans.services import start_run
    from tests.lab import Listeners, wildcard_listening_ports
    from tests.processes import WorkerProcess, wait_for

    rng = random.Random(args.seed)
    addresses = [f"{PREFIX}.{host}" for host in range(1, args.hosts + 1)]
    listeners = Listeners()
    busy = wildcard_listening_ports()
    expected = set()
    for address in addresses:
        for port in rng.sample([p for p in range(1, 10001) if p not in busy], LISTENERS_PER_HOST):
            listeners.open(address, port)
            expected.add((address, port))
    print(f"lab: {len(addresses)} hosts x {LISTENERS_PER_HOST} listeners on {PREFIX}.0/24, ports {PORTS}")

    profile = ScanProfile.objects.get(slug="standard")
    target = ScanTarget.objects.create(
        name="bench", zone=Zone.default(), targets=f"{addresses[0]}-{addresses[-1]}", ports=PORTS, profile=profile
    )
    options = nmap_options(
        profile, PortSet.parse(PORTS), privileged=is_privileged(), host_timeout=settings.NMAP_HOST_TIMEOUT
    )
    times: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="portwatch-bench-"))

    targets_file = work / "targets.txt"
    targets_file.write_text("\n".join(addresses) + "\n")
    argv = [nmap_binary(), *options, "--noninteractive", "-iL", str(targets_file), "-oX", str(work / "raw.xml")]
    print("raw nmap:", " ".join(argv))
    with timed(times, "nmap"):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    print(f"  raw nmap: {times['nmap']:.2f} s")

    def portwatch_run(label: str, workers: int, chunk_size: int) -> float:
        Change.objects.all().delete()
        ScanRun.objects.all().delete()
        Host.objects.all().delete()
        settings.SCAN_CHUNK_SIZE = chunk_size
        procs = [
            WorkerProcess(work / f"{label}-{n}.log", f"--name=bench{n}", "--concurrency=1") for n in range(workers)
        ]
        try:
            start = time.perf_counter()
            run = start_run(target)
            wait_for(lambda: ScanRun.objects.get(pk=run.pk).finished_at, 1800, interval=0.05, message=label)
            elapsed = time.perf_counter() - start
        finally:
            for proc in procs:
                proc.stop()
        run.refresh_from_db()
        opened = set(Change.objects.filter(run=run, kind=ChangeKind.PORT_OPENED).values_list("host__address", "port"))
        missing = expected - opened
        status = (
            "ok"
            if run.status == RunStatus.SUCCEEDED and not missing
            else f"PROBLEM: {run.status} missing={len(missing)}"
        )
        print(
            f"  PortWatch, {label}: {elapsed:.2f} s, {run.chunks.count()} chunk(s), "
            f"{len(opened)} ports opened recorded ({status})"
        )
        return elapsed

    times["pw1"] = portwatch_run("1 worker", 1, settings.SCAN_CHUNK_SIZE)
    times["pw2"] = portwatch_run("2 workers", 2, (args.hosts + 1) // 2)
    listeners.close_all()

    ratio1 = times["pw1"] / times["nmap"]
    ratio2 = times["pw2"] / times["nmap"]
    print(f"ratio, 1 worker:  {times['pw1']:.2f} / {times['nmap']:.2f} = {ratio1:.3f} (goal <= 1.10)")
    print(f"ratio, 2 workers: {times['pw2']:.2f} / {times['nmap']:.2f} = {ratio2:.3f}")
    print(f"pipeline_vs_nmap ratio_1worker={ratio1:.3f} ratio_2workers={ratio2:.3f}")


if __name__ == "__main__":
    sys.exit(main())
