"""nmap options, built from a vetted profile and a parsed port set.

This is the only place that decides what nmap is told to do. Every option
comes from a fixed table below; nothing typed by a user is copied into the
argument list (ports arrive as a ``PortSet`` and are written back by it).
"""

import os

from inventory.choices import Protocol
from inventory.ports import PortSet
from scans.choices import PortScope, ScanType
from scans.constants import MASSCAN_DISCOVERY_PORTS, NSE_SCRIPT_ALLOWLIST


def is_privileged() -> bool:
    """Raw-socket scans (SYN, UDP) need root; connect scans do not."""
    return os.geteuid() == 0


_SCAN_TYPE_FLAG = {
    ScanType.CONNECT: "-sT",
    ScanType.SYN: "-sS",
    ScanType.UDP: "-sU",
}


def scan_type_flag(scan_type: str, *, privileged: bool) -> str:
    if scan_type == ScanType.TCP:
        return "-sS" if privileged else "-sT"
    return _SCAN_TYPE_FLAG[ScanType(scan_type)]


def protocol_of(scan_type: str) -> str:
    return Protocol.UDP if scan_type == ScanType.UDP else Protocol.TCP


def nmap_options(profile, ports: PortSet | None, *, privileged: bool, host_timeout: int) -> list[str]:
    """The option list for ``profile``; targets and output are added by the runner."""
    options = [scan_type_flag(profile.scan_type, privileged=privileged)]
    if ports:
        options += ["-p", str(ports)]
    elif profile.port_scope == PortScope.ALL:
        options += ["-p", str(PortSet.all_ports())]
    else:
        options += ["--top-ports", str(int(profile.top_ports))]
    if profile.version_detection:
        options.append("-sV")
    options += _timing(profile, host_timeout)
    if not profile.resolve_names:
        options.append("-n")
    return options + _scripts(profile)


def _timing(profile, host_timeout: int) -> list[str]:
    """The profile's timing template and retries, and how long one host may take."""
    return [
        f"-{profile.timing}",
        "--max-retries",
        str(int(profile.max_retries)),
        "--host-timeout",
        f"{int(host_timeout)}s",
    ]


def _scripts(profile) -> list[str]:
    """The profile's NSE scripts, every one from the allowlist (a profile naming another is refused)."""
    scripts = [name for name in profile.scripts if name in NSE_SCRIPT_ALLOWLIST]
    if len(scripts) != len(profile.scripts):
        raise ValueError(f"profile {profile.slug} names scripts outside the allowlist")
    return ["--script=" + ",".join(sorted(scripts))] if scripts else []


def reprobe_options(profile, ports: PortSet, *, privileged: bool, host_timeout: int) -> list[str]:
    """Options for a confirmation re-probe of a few host:ports.

    Same scan type and timing as the profile, only the candidate ports, and no
    host discovery: the hosts just answered, the question is the port alone.
    """
    return [
        scan_type_flag(profile.scan_type, privileged=privileged),
        "-p",
        str(ports),
        "-Pn",
        *_timing(profile, host_timeout),
        "-n",
    ]


# --- fast discovery: masscan sweeps, nmap confirms ---------------------------------------


def clamp_rate(rate, ceiling: int) -> int:
    """A sweep's rate in packets/s: the profile's, never above the admin's ceiling
    (MASSCAN_MAX_RATE, which may have been lowered since the profile was saved), at least 1."""
    return max(1, min(int(rate), int(ceiling)))


def masscan_options(profile, ports: PortSet | None, *, max_rate: int, wait: int) -> dict[str, list[str]]:
    """masscan's options for a fast-discovery run, frozen on the run (``ScanRun.masscan_options``).

    ``discovery`` (empty when the profile sweeps every address) finds the live
    hosts: ICMP echo and a SYN to MASSCAN_DISCOVERY_PORTS, where a reset counts
    as an answer (``--show closed``), each sent twice. ``sweep`` probes the ports. Targets,
    exclusions and output files are added by ``scans.masscan_runner``; every
    word here is a fixed flag or a number or port list written by code.
    """
    rate = str(clamp_rate(profile.masscan_rate, max_rate))
    timing = ["--rate", rate, "--wait", str(int(wait))]
    # masscan has no "most common ports" list of its own: a fast-discovery
    # profile sweeps every TCP port unless the target names its ports.
    swept = ports or PortSet.all_ports()
    discovery = []
    if profile.discover_hosts:
        # Each discovery probe is sent twice, a second apart: a host whose probes were all
        # lost in a burst would not be swept at all (seen at high rates in the lab).
        discovery = [
            *("--ping", "-p", str(PortSet.parse(MASSCAN_DISCOVERY_PORTS)), "--show", "closed", "--retries", "1"),
            *timing,
        ]
    return {"discovery": discovery, "sweep": ["-p", str(swept), *timing]}


def confirm_options(profile, *, privileged: bool, host_timeout: int) -> list[str]:
    """nmap's options for the confirm step, without ``-p``: each confirm chunk adds the ports its sweep found.

    ``-Pn``: masscan just heard these hosts; the question is their ports. The
    profile's identification (``-sV``, allowlisted scripts) and timing apply.
    """
    options = [scan_type_flag(profile.scan_type, privileged=privileged), "-Pn"]
    if profile.version_detection:
        options.append("-sV")
    return [*options, *_timing(profile, host_timeout), "-n", *_scripts(profile)]
