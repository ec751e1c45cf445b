"""Taking in a host's report: its listeners replaced, and what changed recorded as changes.

One report at a time per host (the host's row is locked), in one
transaction: the report, its listeners and its changes commit together or
not at all, and the alert outbox (``changes_recorded``) with them. A report
repeated (a cron job's retry, a redelivered request) finds nothing changed
and records nothing; a report older than the host's newest is kept,
marked not applied, and changes nothing.

Changes are per port (protocol and port), not per socket: a daemon that
listens on 0.0.0.0 and [::] is one listener added.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from inventory.models import Host
from listeners import findings
from listeners.choices import SCOPE_RANK
from listeners.models import HostReport, Listener
from listeners.parsing import ParsedReport, Socket
from scans.choices import ChangeKind
from scans.models import Change
from scans.signals import changes_recorded


@dataclass
class Imported:
    report: HostReport
    changes: dict[str, int]  # kind: how many

    @property
    def summary(self) -> str:
        if not self.report.applied:
            return "older than the host's newest report: kept, nothing changed"
        if not self.changes:
            return "no change"
        return ", ".join(f"{n} {ChangeKind(kind).label}" for kind, n in sorted(self.changes.items()))


def take(host: Host, parsed: ParsedReport, *, source: str, user=None, now: datetime | None = None) -> Imported:
    now = now or timezone.now()
    taken_at = min(parsed.taken_at or now, now)  # a host's clock ahead of ours does not make a report from the future
    sockets = _unique(parsed.sockets)
    with transaction.atomic():
        Host.objects.select_for_update().filter(pk=host.pk).first()
        newest = HostReport.objects.filter(host=host, applied=True).order_by("-taken_at", "-id").first()
        report = HostReport.objects.create(
            host=host,
            format=parsed.format,
            taken_at=taken_at,
            received_at=now,
            source=source,
            submitted_by=user if getattr(user, "pk", None) else None,
            host_name=parsed.host_name,
            sockets=len(sockets),
            skipped=parsed.skipped,
            applied=newest is None or taken_at >= newest.taken_at,
        )
        if not report.applied:
            return Imported(report, {})
        changes = _replace(host, report, sockets, now)
        findings.refresh([host.pk])
        if changes:
            recorded = Change.objects.filter(pk__in=[change.pk for change in changes])
            changes_recorded.send(sender=Change, run=None, changes=recorded, key=f"listeners-{report.public_id}")
        counts: dict[str, int] = defaultdict(int)
        for change in changes:
            counts[change.kind] += 1
        return Imported(report, dict(counts))


def _unique(sockets: list[Socket]) -> dict[tuple, Socket]:
    """One socket per (protocol, port, address): several processes sharing one (SO_REUSEPORT) are one listener."""
    unique: dict[tuple, Socket] = {}
    for socket in sockets:
        unique.setdefault((socket.protocol, socket.port, socket.address), socket)
    return unique


def _replace(host: Host, report: HostReport, sockets: dict[tuple, Socket], now: datetime) -> list[Change]:
    old = {(row.protocol, row.port, row.address): row for row in Listener.objects.filter(host=host)}
    before, after = _by_port(old.values()), _by_port(sockets.values())
    # Sockets gone, and sockets whose details changed (a restarted daemon's pid), go; the latter come back
    # with their first_seen: a few set-based statements (bulk_update's CASE per row took 27 s for 10,000).
    new, gone = [], [row.pk for key, row in old.items() if key not in sockets]
    for key, socket in sockets.items():
        row = old.get(key)
        details = (socket.interface, socket.scope, socket.process, socket.pid, socket.user)
        if row is not None and details == (row.interface, row.scope, row.process, row.pid, row.user):
            continue
        if row is not None:
            gone.append(row.pk)
        new.append(
            Listener(
                host=host, report=report, protocol=key[0], port=key[1], address=key[2],
                interface=socket.interface, scope=socket.scope, process=socket.process, pid=socket.pid,
                user=socket.user, first_seen=row.first_seen if row is not None else now,
            )
        )  # fmt: skip
    for start in range(0, len(gone), 5000):
        Listener.objects.filter(pk__in=gone[start : start + 5000]).delete()
    Listener.objects.filter(host=host).update(report=report)
    Listener.objects.bulk_create(new, batch_size=2000)
    changes = []
    for key in sorted(before.keys() | after.keys()):
        was, now_is = before.get(key), after.get(key)
        if was is None:
            kind = ChangeKind.LISTENER_ADDED
        elif now_is is None:
            kind = ChangeKind.LISTENER_REMOVED
        elif was["addresses"] != now_is["addresses"]:
            kind = ChangeKind.LISTENER_REBOUND
        else:
            continue
        changes.append(
            Change(host=host, kind=kind, protocol=key[0], port=key[1], before=was, after=now_is, created_at=now)
        )
    return Change.objects.bulk_create(changes, batch_size=2000)


def _by_port(sockets) -> dict[tuple, dict]:
    """{(protocol, port): {"addresses", "scope" (the widest), "process", "pid", "user"}} of sockets or Listener rows."""
    ports: dict[tuple, dict] = {}
    for socket in sorted(sockets, key=lambda socket: (socket.protocol, socket.port, socket.address)):
        entry = ports.setdefault(
            (socket.protocol, socket.port),
            {"addresses": [], "scope": socket.scope, "process": socket.process, "pid": socket.pid, "user": socket.user},
        )
        entry["addresses"].append(socket.address)
        if SCOPE_RANK[socket.scope] > SCOPE_RANK[entry["scope"]]:
            entry["scope"] = socket.scope
    return ports
