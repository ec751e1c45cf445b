"""The view engine: a scan from a vantage point other than the zone's home, diffed into that vantage point's view.

The same specification as the inventory's engines (``scans.ingest.diff``),
over another state: the vantage point's ``HostView`` and ``PortView`` rows
instead of the hosts' status and their services. So every coverage rule
holds per vantage point: a failed chunk concludes nothing, a port outside
the probed set is not observed, a host that did not answer keeps its ports
(stale), and nothing here reads or writes another vantage point's view or
the inventory's states.

What the diff reports becomes the view's changes, carrying the vantage point:

- a port open from here where it was not (``port_opened``, ``port_returned``):
  ``exposure_opened``; open no longer (``port_closed``, ``port_filtered``):
  ``exposure_closed``; another service name is the inventory's business (no change);
- a host that stops (or starts again) answering this vantage point:
  ``host_unreachable`` / ``host_returned`` from here;
- a host the inventory does not know yet is added to it (``host_discovered``
  from here): a host that answers any vantage point exists. The inventory's
  port states stay empty until its home vantage point scans it.
"""

from collections.abc import Iterable, Iterator
from datetime import datetime

from inventory.choices import HostStatus, PortState
from inventory.models import Host
from reach.models import HostView, PortView, VantagePoint
from scans.choices import ChangeKind
from scans.ingest.diff import ChangeRecord, Coverage, DiffResult, KnownHost, KnownService, diff_hosts
from scans.ingest.engine import Destination, Written
from scans.ingest.orm import BATCH_HOSTS, OrmEngine, batched
from scans.models import Change
from scans.nmap_xml import HostObservation, unique_hosts

# What a change of the inventory's kind means for a vantage point's view (None: nothing to record).
VIEW_KINDS = {
    ChangeKind.PORT_OPENED: ChangeKind.EXPOSURE_OPENED,
    ChangeKind.PORT_RETURNED: ChangeKind.EXPOSURE_OPENED,
    ChangeKind.PORT_CLOSED: ChangeKind.EXPOSURE_CLOSED,
    ChangeKind.PORT_FILTERED: ChangeKind.EXPOSURE_CLOSED,
    ChangeKind.SERVICE_CHANGED: None,
    ChangeKind.HOST_UNREACHABLE: ChangeKind.HOST_UNREACHABLE,
    ChangeKind.HOST_RETURNED: ChangeKind.HOST_RETURNED,
    ChangeKind.HOST_DISCOVERED: ChangeKind.HOST_DISCOVERED,  # only for a host new to the inventory
}


class ViewEngine:
    """``diff.diff_hosts`` over BATCH_HOSTS hosts at a time, against one vantage point's view."""

    def __init__(self, vantage: VantagePoint):
        self.vantage = vantage

    def write(self, to: Destination, coverage: Coverage, observations: Iterable[HostObservation]) -> Iterator[Written]:
        written = Written(0, 0)
        seen: set[str] = set()
        for batch in batched(unique_hosts(observations), BATCH_HOSTS):
            seen.update(observation.address for observation in batch)
            written.seen += len(batch)
            written.up += sum(1 for observation in batch if observation.up)
            self._apply(to, coverage, batch, [], written)
        silent = sorted(address for address in coverage.addresses if address not in seen)
        for batch in batched(silent, BATCH_HOSTS):
            self._apply(to, coverage, [], batch, written)
        yield written

    # A file is streamed through the reader in this process into ``write``, as the ORM engine does.
    write_file = OrmEngine.write_file

    def _apply(
        self, to: Destination, coverage: Coverage, observations: list[HostObservation], silent: list[str], written
    ) -> None:
        addresses = [observation.address for observation in observations] + silent
        hosts = {host.address: host for host in Host.objects.filter(zone=to.zone, address__in=addresses)}
        known = self._known(hosts)
        result = diff_hosts(coverage, known, observations, silent)
        host_ids = {address: host.pk for address, host in hosts.items()}
        host_ids.update(self._add_hosts(to, result, hosts))
        self._write_host_views(result, host_ids, to.now)
        self._write_port_views(result, host_ids, to.now)
        changes = self._write_changes(to, result, host_ids, in_inventory=set(hosts))
        written.changes.update(change.kind for change in changes)

    def _known(self, hosts: dict[str, Host]) -> dict[str, KnownHost]:
        """The view's known state: only hosts this vantage point has looked at (others are new to it)."""
        by_id = {host.pk: host for host in hosts.values()}
        known: dict[str, KnownHost] = {}
        for view in HostView.objects.filter(vantage=self.vantage, host_id__in=list(by_id)):
            address = by_id[view.host_id].address
            known[address] = KnownHost(address, view.status, last_scanned=view.last_scanned)
        ports = PortView.objects.filter(vantage=self.vantage, host_id__in=list(by_id)).values_list(
            "host_id", "protocol", "port", "state", "name", "stale"
        )
        for host_id, protocol, port, state, name, stale in ports:
            host = known.get(by_id[host_id].address)
            if host is not None:
                host.services[(protocol, port)] = KnownService(protocol, port, state, name=name, stale=stale)
        return known

    def _add_hosts(self, to: Destination, result: DiffResult, hosts: dict[str, Host]) -> dict[str, int]:
        """Hosts the inventory did not know: a host that answers any vantage point exists."""
        new = [
            Host(
                zone=to.zone,
                address=update.address,
                hostnames=list(update.hostnames),
                status=HostStatus.UP,
                first_seen=to.now,
                last_seen=to.now,
                last_scanned=to.now,
            )
            for update in result.hosts
            if update.new and update.address not in hosts
        ]
        return {host.address: host.pk for host in Host.objects.bulk_create(new)}

    def _write_host_views(self, result: DiffResult, host_ids: dict[str, int], now: datetime) -> None:
        ids = [host_ids[update.address] for update in result.hosts]
        views = {view.host_id: view for view in HostView.objects.filter(vantage=self.vantage, host_id__in=ids)}
        created, updated, went_silent = [], [], []
        for update in result.hosts:
            host_id = host_ids[update.address]
            view = views.get(host_id)
            if view is None:
                view = HostView(host_id=host_id, vantage=self.vantage, first_seen=now, last_scanned=now)
                created.append(view)
            else:
                updated.append(view)
            view.status = update.status
            view.last_scanned = now
            if update.responded:
                view.last_seen = now
            else:
                went_silent.append(host_id)
        HostView.objects.bulk_create(created)
        HostView.objects.bulk_update(updated, ["status", "last_scanned", "last_seen"])
        if went_silent:
            # A host that did not answer says nothing about its ports: kept as last seen, stale.
            PortView.objects.filter(vantage=self.vantage, host_id__in=went_silent).exclude(
                state=PortState.CLOSED
            ).update(stale=True)

    def _write_port_views(self, result: DiffResult, host_ids: dict[str, int], now: datetime) -> None:
        rows = {
            (row.host_id, row.protocol, row.port): row
            for row in PortView.objects.filter(
                vantage=self.vantage, host_id__in={host_ids[u.address] for u in result.services}
            )
        }
        new_rows, changed_rows = [], []
        for update in result.services:
            key = (host_ids[update.address], update.protocol, update.port)
            row = rows.get(key)
            if row is None:
                row = PortView(
                    host_id=key[0],
                    vantage=self.vantage,
                    protocol=update.protocol,
                    port=update.port,
                    first_seen=now,
                    last_changed=now,
                    last_seen=now,
                )
                new_rows.append(row)
            else:
                changed_rows.append(row)
                if update.changed:
                    row.last_changed = now
                if update.state != PortState.CLOSED:
                    row.last_seen = now
            row.state = update.state
            row.name = update.name
            row.stale = False
        PortView.objects.bulk_create(new_rows, batch_size=1000)
        fields = ["state", "name", "stale", "last_seen", "last_changed"]
        PortView.objects.bulk_update(changed_rows, fields, batch_size=1000)

    def _write_changes(
        self, to: Destination, result: DiffResult, host_ids: dict[str, int], *, in_inventory: set[str]
    ) -> list[Change]:
        changes = []
        for record in result.changes():
            kind = self._view_kind(record, in_inventory)
            if kind is None:
                continue
            changes.append(
                Change(
                    run=to.run,
                    chunk=to.chunk,
                    vantage=self.vantage,
                    host_id=host_ids[record.address],
                    kind=kind,
                    protocol=record.protocol,
                    port=record.port,
                    before=record.before,
                    after=record.after,
                    created_at=to.now,
                )
            )
        return Change.objects.bulk_create(changes, batch_size=1000)

    @staticmethod
    def _view_kind(record: ChangeRecord, in_inventory: set[str]) -> str | None:
        if record.kind == ChangeKind.HOST_DISCOVERED and record.address in in_inventory:
            return None  # known to the inventory, new only to this vantage point: its ports say the rest
        return VIEW_KINDS[record.kind]
