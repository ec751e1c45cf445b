#!/usr/bin/env python3
"""The test suite's nmap: refuses to scan anything outside the lab, then runs nmap.

tests/settings.py points NMAP_PATH here, and the processes the tests start
(workers, the embedded run) inherit it, so no test can scan beyond 127.0.0.0/8
and ::1, whatever its scope rules allow. The network-namespace lab runs its
own wrapper, which scans inside the namespace the test created.
"""

import ipaddress
import os
import sys

ALLOWED = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


def refused(token: str) -> bool:
    try:
        network = ipaddress.ip_network(token, strict=False)
    except ValueError:
        return True  # PortWatch hands nmap addresses and networks only
    return not any(network.version == allowed.version and network.subnet_of(allowed) for allowed in ALLOWED)


def main() -> None:
    args = sys.argv[1:]
    if "-iL" in args:
        with open(args[args.index("-iL") + 1]) as targets:
            outside = [token for token in targets.read().split() if refused(token)]
        if outside:
            sys.exit(f"tests/nmap_guard.py: refusing to scan outside 127.0.0.0/8: {' '.join(outside[:5])}")
    os.execvp("nmap", ["nmap", *args])  # noqa: S606 - checked above; now it is nmap


if __name__ == "__main__":
    main()
