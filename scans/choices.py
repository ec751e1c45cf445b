"""Choices of the scan engine, named once."""

from django.db import models


class ScanType(models.TextChoices):
    # SYN scan where the worker may open raw sockets, TCP connect otherwise:
    # both probe the same ports and report the same open/closed states.
    TCP = "tcp", "TCP (SYN if privileged, else connect)"
    CONNECT = "connect", "TCP connect"
    SYN = "syn", "TCP SYN (needs root or CAP_NET_RAW)"
    UDP = "udp", "UDP (needs root or CAP_NET_RAW)"


class ProfileKind(models.TextChoices):
    NMAP = "nmap", "nmap scan"
    # masscan sweeps the addresses and ports at a set rate, then nmap probes
    # only what it found, in the same run (scans.discovery).
    FAST_DISCOVERY = "fast_discovery", "Fast discovery (masscan sweeps, nmap confirms)"


class ChunkStep(models.TextChoices):
    """What a chunk runs: an ordinary nmap scan, or one of fast discovery's two steps."""

    SCAN = "scan", "nmap scan"
    # masscan over the chunk's addresses; its completion queues the confirm chunks.
    SWEEP = "sweep", "masscan sweep"
    # nmap over the hosts and ports a sweep found, and only those.
    CONFIRM = "confirm", "nmap confirm"


class PortScope(models.TextChoices):
    TOP = "top", "Most common ports"
    ALL = "all", "All 65,535 ports"


class Timing(models.TextChoices):
    POLITE = "T2", "Polite (T2)"
    NORMAL = "T3", "Normal (T3)"
    AGGRESSIVE = "T4", "Aggressive (T4)"


class ScheduleKind(models.TextChoices):
    MANUAL = "manual", "Manual (scan now only)"
    INTERVAL = "interval", "Every N minutes"
    CRON = "cron", "Cron expression"


class ScopeAction(models.TextChoices):
    ALLOW = "allow", "allow"
    EXCLUDE = "exclude", "exclude"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    # Some chunks succeeded, others failed: only the succeeded addresses count.
    PARTIAL = "partial", "partial"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


TERMINAL_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.CANCELLED})


class ChunkStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


TERMINAL_CHUNK_STATUSES = frozenset({ChunkStatus.SUCCEEDED, ChunkStatus.FAILED, ChunkStatus.CANCELLED})


class AttemptOutcome(models.TextChoices):
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    # Failed for a reason that may pass: the chunk waits and is tried again.
    RETRY = "retry", "failed, tried again"
    FAILED = "failed", "failed"
    # Its worker died or stopped answering; another attempt took over.
    LOST = "lost", "worker lost"
    CANCELLED = "cancelled", "cancelled"


class Trigger(models.TextChoices):
    MANUAL = "manual", "scan now"
    SCHEDULE = "schedule", "schedule"
    IMPORT = "import", "file import"
    REPROBE = "reprobe", "confirmation re-probe"


class Scanner(models.TextChoices):
    """Who wrote a run's observations: what they can conclude differs (see scans.ingest.imports)."""

    NMAP = "nmap", "nmap"
    # Only what it heard counts: its silence closes nothing.
    MASSCAN = "masscan", "masscan"


class ChangeKind(models.TextChoices):
    HOST_DISCOVERED = "host_discovered", "host discovered"
    HOST_UNREACHABLE = "host_unreachable", "host unreachable"
    HOST_RETURNED = "host_returned", "host returned"
    PORT_OPENED = "port_opened", "port opened"
    PORT_CLOSED = "port_closed", "port closed"
    PORT_FILTERED = "port_filtered", "port filtered"
    # Open again after it was filtered: it was open before the filtering, so
    # this is not a new port (a lossy link or a firewall blip), and the
    # built-in alert rules stay quiet about it.
    PORT_RETURNED = "port_returned", "port returned"
    SERVICE_CHANGED = "service_changed", "service changed"
    # Seen from a vantage point other than the zone's home (reach.PortView):
    # open from there where it was not, and no longer open from there.
    EXPOSURE_OPENED = "exposure_opened", "exposure opened"
    EXPOSURE_CLOSED = "exposure_closed", "exposure closed"
    # A vantage point reaches a port that a segmentation rule says it must
    # not (reach.segmentation), and no longer does (the port closed or was
    # filtered from there, or a rule changed). Recorded by the scan that saw
    # it, or with no run when a rule or a host's tags changed.
    SEGMENTATION_VIOLATED = "segmentation_violated", "segmentation violated"
    SEGMENTATION_KEPT = "segmentation_kept", "segmentation kept"
    # The host's own report (listeners): a port it listens on that it did
    # not, no longer does, or now listens on other addresses (before and
    # after: addresses, bind scope, process). Recorded with no run.
    LISTENER_ADDED = "listener_added", "listener added"
    LISTENER_REMOVED = "listener_removed", "listener removed"
    LISTENER_REBOUND = "listener_rebound", "listener rebound"
    # The certificate behind a TLS port (certs): another one than the port
    # had (before and after: fingerprint, subject, not after), recorded by
    # the scan that saw it; expiring or expired, recorded with no run by
    # beat, once per CERT_EXPIRY_REPEAT_DAYS per port and certificate.
    CERTIFICATE_CHANGED = "certificate_changed", "certificate changed"
    CERTIFICATE_EXPIRING = "certificate_expiring", "certificate expiring"
    CERTIFICATE_EXPIRED = "certificate_expired", "certificate expired"


SEGMENTATION_KINDS = (ChangeKind.SEGMENTATION_VIOLATED, ChangeKind.SEGMENTATION_KEPT)
LISTENER_KINDS = (ChangeKind.LISTENER_ADDED, ChangeKind.LISTENER_REMOVED, ChangeKind.LISTENER_REBOUND)

CERTIFICATE_KINDS = (ChangeKind.CERTIFICATE_CHANGED, ChangeKind.CERTIFICATE_EXPIRING, ChangeKind.CERTIFICATE_EXPIRED)

HOST_CHANGE_KINDS = frozenset({ChangeKind.HOST_DISCOVERED, ChangeKind.HOST_UNREACHABLE, ChangeKind.HOST_RETURNED})

# Changes of a port's state: counted to tell a flapping port (FLAP_THRESHOLD).
STATE_CHANGE_KINDS = (
    ChangeKind.PORT_OPENED,
    ChangeKind.PORT_CLOSED,
    ChangeKind.PORT_FILTERED,
    ChangeKind.PORT_RETURNED,
)
