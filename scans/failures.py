"""Why an attempt at a chunk failed, and whether trying again could help.

A chunk that fails concludes nothing about its addresses, so a transient
fault (nmap killed by the OOM killer or an operator, a machine short of
memory or file descriptors, a DNS server that timed out, the database
restarting under the ingest) would otherwise cost the whole run its
coverage. Those are retried with back-off (``scans.chunks``); definite
errors (nmap refusing its options, a hostname that does not exist, a time
limit) fail at once: the same attempt would fail the same way.
"""

import errno
import re
import signal
import socket
from dataclasses import dataclass

from django.db import InterfaceError, OperationalError

# What nmap (or the C library under it) says when the machine, not the scan,
# is the problem.
_RESOURCE_ERRORS = re.compile(
    r"cannot allocate memory|out of memory|too many open files|no buffer space available"
    r"|resource temporarily unavailable|no space left on device|malloc|calloc|realloc",
    re.IGNORECASE,
)
_TRANSIENT_ERRNOS = frozenset({errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.EAGAIN, errno.ENOSPC})


@dataclass(frozen=True)
class Failure:
    """One failed attempt: what to show, and whether to try again."""

    message: str
    transient: bool


def nmap_exit(returncode: int, stderr: str) -> Failure:
    """nmap ended without finishing its scan."""
    detail = stderr.strip() or "no error output"
    if returncode < 0:
        name = _signal_name(-returncode)
        return Failure(f"nmap was killed by signal {-returncode} ({name}) before it finished: {detail}", True)
    message = f"nmap exited with status {returncode}: {detail}"
    return Failure(message, bool(_RESOURCE_ERRORS.search(stderr)))


def resolution(hostname: str, error: socket.gaierror) -> Failure:
    """A hostname of the chunk did not resolve: retried only if the resolver gave up for now."""
    transient = error.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_SYSTEM", None))
    reason = error.strerror or str(error)
    return Failure(f"The hostname {hostname} did not resolve: {reason}.", transient)


def from_exception(error: BaseException) -> Failure:
    """An error raised while scanning or ingesting (not nmap's own exit)."""
    if isinstance(error, (OperationalError, InterfaceError)):
        return Failure(f"The database was unreachable while the result was written: {error}".strip(), True)
    if isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS:
        return Failure(f"The worker's machine ran short of resources: {error}", True)
    return Failure(f"Internal error: {type(error).__name__}: {error}", False)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def masscan_exit(returncode: int | None, stderr: str) -> Failure:
    """masscan ended without finishing its sweep (it exits 1 on bad options, a missing adapter or router)."""
    detail = stderr.strip()[-1000:] or "no error output"
    if returncode is not None and returncode < 0:
        return Failure(f"masscan was killed by signal {-returncode} ({_signal_name(-returncode)}): {detail}", True)
    return Failure(f"masscan exited with status {returncode}: {detail}", bool(_RESOURCE_ERRORS.search(stderr)))
