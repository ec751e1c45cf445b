"""Write synthetic nmap XML scans for the ingest benchmark (nothing is scanned).

    python -m bench.nmap_synth OUT_DIR --hosts 65536 [--churn 0.02] [--seed 1]

Writes scan1.xml and scan2.xml in the shape nmap 7.93 writes for a SYN scan of
all 65,535 TCP ports (-sS -p-): every host up, ten open ports each, the other
ports summarised as closed with their port list. Scan 2 moves ``churn`` of all
open ports to another port of the same host (closed at the old port, opened at
the new one). Addresses count up from 198.18.0.1, in the benchmarking range
198.18.0.0/15 (131,072 addresses; a larger scan goes on past it, which is
harmless: these files are only read, nothing is scanned).
"""

import argparse
import ipaddress
import random
from pathlib import Path

FIRST_ADDRESS = int(ipaddress.ip_address("198.18.0.1"))
PORTS_PER_HOST = 10
SERVICE_NAMES = {22: "ssh", 25: "smtp", 53: "domain", 80: "http", 443: "https", 3306: "mysql", 5432: "postgresql"}
HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<?xml-stylesheet href="file:///usr/bin/../share/nmap/nmap.xsl" type="text/xsl"?>
<!-- Nmap 7.93 scan initiated as: nmap -sS -p- -T4 -n -oX {name} -iL targets.txt -->
<nmaprun scanner="nmap" args="nmap -sS -p- -T4 -n -oX {name} -iL targets.txt" start="{start}" startstr="" \
version="7.93" xmloutputversion="1.05">
<scaninfo type="syn" protocol="tcp" numservices="65535" services="1-65535"/>
<verbose level="0"/>
<debugging level="0"/>
"""
FOOTER = """<runstats><finished time="{end}" timestr="" summary="Nmap done; {hosts} IP addresses ({hosts} hosts up)" \
elapsed="{elapsed}" exit="success"/><hosts up="{hosts}" down="0" total="{hosts}"/>
</runstats>
</nmaprun>
"""


def address(index: int) -> str:
    return str(ipaddress.ip_address(FIRST_ADDRESS + index))


def closed_ranges(open_ports: list[int]) -> str:
    """nmap's <extrareasons ports=...>: every port but the open ones."""
    ranges, low = [], 1
    for port in sorted(open_ports):
        if port > low:
            ranges.append(f"{low}-{port - 1}" if port - 1 > low else str(low))
        low = port + 1
    if low <= 65535:
        ranges.append(f"{low}-65535" if low < 65535 else "65535")
    return ",".join(ranges)


def write_scan(path: Path, hosts: list[list[int]], start: int) -> None:
    with open(path, "w", buffering=1 << 20) as out:
        out.write(HEADER.format(name=path.name, start=start))
        for index, ports in enumerate(hosts):
            out.write(
                f'<host starttime="{start}" endtime="{start + 1}">'
                '<status state="up" reason="syn-ack" reason_ttl="63"/>\n'
                f'<address addr="{address(index)}" addrtype="ipv4"/>\n<hostnames>\n</hostnames>\n'
                f'<ports><extraports state="closed" count="{65535 - len(ports)}">\n'
                f'<extrareasons reason="reset" count="{65535 - len(ports)}" proto="tcp" '
                f'ports="{closed_ranges(ports)}"/>\n'
                "</extraports>\n"
            )
            for port in sorted(ports):
                name = SERVICE_NAMES.get(port, "unknown")
                out.write(
                    f'<port protocol="tcp" portid="{port}"><state state="open" reason="syn-ack" reason_ttl="63"/>'
                    f'<service name="{name}" method="table" conf="3"/></port>\n'
                )
            out.write('</ports>\n<times srtt="150" rttvar="50" to="100000"/>\n</host>\n')
        out.write(FOOTER.format(end=start + 600, hosts=len(hosts), elapsed=600))


def generate(out_dir: Path, hosts: int, churn: float = 0.02, seed: int = 1) -> tuple[Path, Path, int]:
    """Write scan1.xml and scan2.xml; return their paths and the number of ports moved."""
    rng = random.Random(seed)
    first = [rng.sample(range(1, 65536), PORTS_PER_HOST) for _ in range(hosts)]
    second = [list(ports) for ports in first]
    moved = round(hosts * PORTS_PER_HOST * churn)
    for flat in rng.sample(range(hosts * PORTS_PER_HOST), moved):
        host, slot = divmod(flat, PORTS_PER_HOST)
        taken = set(first[host]) | set(second[host])
        new = rng.randrange(1, 65536)
        while new in taken:
            new = rng.randrange(1, 65536)
        second[host][slot] = new
    out_dir.mkdir(parents=True, exist_ok=True)
    scan1, scan2 = out_dir / "scan1.xml", out_dir / "scan2.xml"
    write_scan(scan1, first, start=1_790_000_000)
    write_scan(scan2, second, start=1_790_086_400)
    return scan1, scan2, moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--hosts", type=int, default=65536)
    parser.add_argument("--churn", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    scan1, scan2, moved = generate(args.out_dir, args.hosts, args.churn, args.seed)
    print(f"wrote {scan1} and {scan2}: {args.hosts} hosts, {moved} ports moved")


if __name__ == "__main__":
    main()
