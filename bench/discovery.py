"""Fast-discovery benchmark: a PortWatch fast-discovery run against raw nmap -p- -T4.

    make bench-discovery        (python -m tests.stack python -m bench.discovery, as root)

Builds a sparse /20 in a network-namespace lab (``bench.discovery_lab``):
4,096 addresses on 198.18.16.0/20, 64 of them live, 8 listeners each on ports
drawn from 1-65535. Then, in the same run, times

- the anchor, raw ``nmap -p- -T4 -n`` of the /20 inside the scanner's namespace;
- a PortWatch fast-discovery run of the same target, all TCP ports, from
  "scan now" to the run finalized with its changes recorded, carried out by a
  real worker process (``manage.py run_worker``): the masscan sweep chunk (host
  discovery, then every port of the hosts that answered), then the nmap
  confirm chunks it queued;

with wall time and CPU time (the anchor's nmap; the worker's process tree,
masscan and nmap included). Checks that every listener was found (port_opened
recorded). The last line is

    discovery_vs_nmap addresses=4096 ratio=<x> found=<n>/<expected>

``--rate`` sets the profile's masscan rate (MASSCAN_MAX_RATE is raised to it
for the worker); ``--sample N`` times raw nmap on N addresses of the /20 only
(the live hosts among them in proportion) and says so.
"""

import argparse
import ipaddress
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import fresh_database, setup_django
from bench.discovery_lab import NETWORK, SparseLab

LIVE_HOSTS = 64
LISTENERS_PER_HOST = 8


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children, with their waited-for children (masscan, nmap)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [
        pid,
        *(
            int(child)
            for child in subprocess.run(
                ["pgrep", "-P", str(pid)], check=False, capture_output=True, text=True
            ).stdout.split()
        ),
    ]
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(int(value) for value in fields[11:15]) / tick  # utime stime cutime cstime
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1_000_000, help="masscan packets/s (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample", type=int, default=0, help="time raw nmap on this many addresses only")
    parser.add_argument("--no-version", action="store_true", help="confirm without -sV")
    parser.add_argument(
        "--anchor-timeout",
        type=float,
        default=None,
        help="stop raw nmap after this many seconds: its time is then a lower bound, the ratio an upper one",
    )
    parser.add_argument(
        "--filtered",
        action="store_true",
        help="a firewall on the live hosts drops TCP to every port but their listeners (filtered, not closed)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench-discovery builds a network-namespace lab and runs masscan: run it as root.")

    rng = random.Random(args.seed)
    network = ipaddress.ip_network(NETWORK)
    hosts = [str(address) for address in network.hosts()]
    live = {
        address: sorted(rng.sample(range(1, 65536), LISTENERS_PER_HOST))
        for address in sorted(rng.sample(hosts, LIVE_HOSTS), key=ipaddress.ip_address)
    }
    expected = {(address, port) for address, ports in live.items() for port in ports}
    work = Path(tempfile.mkdtemp(prefix="portwatch-bench-discovery-"))
    lab = SparseLab(work, live)
    try:
        if args.filtered:
            lab.drop_closed_ports(live)
        nmap_path, masscan_path = lab.wrapper("nmap"), lab.wrapper("masscan")
        setup_django(
            fresh_database("portwatch_bench_discovery"),
            NMAP_PATH=str(nmap_path),
            MASSCAN_PATH=str(masscan_path),
            MASSCAN_MAX_RATE=str(args.rate),
            MASSCAN_WAIT_SECONDS="1",
            SCAN_CONFIRM_CHANGES="1",
        )
        print(
            f"lab: {NETWORK} ({network.num_addresses} addresses), {LIVE_HOSTS} live, "
            f"{LISTENERS_PER_HOST} listeners each in 1-65535"
            + (", every other port filtered (dropped)" if args.filtered else "")
        )
        print(f"load before: {os.getloadavg()[0]:.2f} (1 min)")

        # --- the anchor: raw nmap -p- -T4 -----------------------------------------------------
        targets = [NETWORK]
        scale = 1.0
        if args.sample:
            sample = sorted(rng.sample(hosts, args.sample), key=ipaddress.ip_address)
            targets, scale = sample, network.num_addresses / args.sample
        targets_file = work / "nmap-targets.txt"
        targets_file.write_text("\n".join(targets) + "\n")
        argv = [str(nmap_path), "-p-", "-T4", "-n", "-iL", str(targets_file), "-oX", str(work / "raw.xml")]
        print(
            "anchor:",
            "nmap -p- -T4 -n",
            "(inside the scanner's namespace)",
            NETWORK if not args.sample else f"{args.sample} sampled addresses",
        )
        cpu0, wall0 = children_cpu(), time.perf_counter()
        anchor_stopped = False
        try:
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=args.anchor_timeout)
        except subprocess.TimeoutExpired:
            anchor_stopped = True  # run() killed nmap
        nmap_wall, nmap_cpu = time.perf_counter() - wall0, children_cpu() - cpu0
        raw = (work / "raw.xml").read_text()
        nmap_found = len(re.findall(r'<state state="open"', raw))
        if anchor_stopped:
            print(f"  raw nmap: STOPPED after {nmap_wall:.2f} s (--anchor-timeout), unfinished: a lower bound")
        else:
            print(f"  raw nmap: wall {nmap_wall:.2f} s, cpu {nmap_cpu:.2f} s, {nmap_found} open ports")
        if args.sample:
            print(
                f"  (a sample of {args.sample} addresses: scaled x{scale:.1f} to {nmap_wall * scale:.1f} s for the /20)"
            )
            nmap_wall, nmap_cpu = nmap_wall * scale, nmap_cpu * scale

        # --- PortWatch: a fast-discovery run, carried out by a real worker ---------------------
        from django.conf import settings

        from inventory.models import Zone
        from scans.choices import ChangeKind, ChunkStep, ProfileKind, RunStatus
        from scans.models import Change, ScanProfile, ScanRun, ScanTarget, ScopeRule
        from scans.services import start_run
        from tests.processes import WorkerProcess, wait_for

        ScopeRule.objects.create(network=NETWORK, action="allow", reason="bench lab")
        profile = ScanProfile.objects.create(
            slug="bench-fast",
            name="Bench fast discovery",
            kind=ProfileKind.FAST_DISCOVERY,
            port_scope="all",
            version_detection=not args.no_version,
            masscan_rate=args.rate,
        )
        target = ScanTarget.objects.create(name="sparse /20", zone=Zone.default(), targets=NETWORK, profile=profile)
        worker = WorkerProcess(work / "worker.log", "--name=bench", "--concurrency=1")
        try:
            cpu_before = tree_cpu(worker.process.pid)
            start = time.perf_counter()
            run = start_run(target)
            wait_for(lambda: ScanRun.objects.get(pk=run.pk).finished_at, 3600, interval=0.05, message="run")
            pw_wall = time.perf_counter() - start
            pw_cpu = tree_cpu(worker.process.pid) - cpu_before
        finally:
            worker.stop()
        run.refresh_from_db()
        sweep = run.chunks.get(step=ChunkStep.SWEEP)
        steps = {
            step: [(chunk.started_at, chunk.finished_at) for chunk in run.chunks.filter(step=step)]
            for step in (ChunkStep.SWEEP, ChunkStep.CONFIRM)
        }
        opened = set(Change.objects.filter(run=run, kind=ChangeKind.PORT_OPENED).values_list("host__address", "port"))
        found = len(expected & opened)
        print(
            f"PortWatch: masscan {' '.join(run.masscan_options['sweep'])}; "
            f"confirm: nmap {' '.join(run.nmap_options)} -p <found>"
        )
        print(f"  sweep: {sweep.found}")
        for step, spans in steps.items():
            took = sum((end - begin).total_seconds() for begin, end in spans if begin and end)
            print(f"  {step}: {len(spans)} chunk(s), {took:.2f} s")
        print(
            f"  run: {run.status}, wall {pw_wall:.2f} s, cpu {pw_cpu:.2f} s (worker, masscan, nmap), "
            f"{len(opened)} ports opened recorded"
        )
        if run.status != RunStatus.SUCCEEDED or found != len(expected):
            print(f"  PROBLEM: {run.status} {run.error} missing={sorted(expected - opened)[:10]}")
        print(f"load after: {os.getloadavg()[0]:.2f} (1 min); rate {settings.MASSCAN_MAX_RATE} packets/s")
        ratio = pw_wall / nmap_wall
        if anchor_stopped:
            print(f"raw nmap did not finish within {nmap_wall:.0f} s: the ratio below is an upper bound")
        print(
            f"wall ratio {pw_wall:.2f} / {nmap_wall:.2f} = {ratio:.3f} (goal <= 0.20); "
            f"cpu ratio {pw_cpu:.2f} / {nmap_cpu:.2f} = {pw_cpu / nmap_cpu:.3f}"
        )
        print(f"discovery_vs_nmap addresses={network.num_addresses} ratio={ratio:.3f} found={found}/{len(expected)}")
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
