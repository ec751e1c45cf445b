"""What a notification says: one context, rendered from templates for each medium.

Text that scanned hosts control (hostnames, service names, products,
versions) reaches every medium through the medium's own escaping: HTML
autoescaping for the HTML email, ``alert_text.plain`` for plain text and the
log, ``alert_text.chat`` for chat tools, ``json.dumps`` for webhooks.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from alerts.choices import NotificationKind, WorkerEvent
from alerts.models import Notification
from alerts.templatetags.alert_text import plain
from inventory.choices import NO_RISK, Severity
from inventory.models import Service
from scans.choices import HOST_CHANGE_KINDS, SEGMENTATION_KINDS


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


@dataclass
class Line:
    """One change as every medium shows it."""

    id: str
    kind: str
    kind_label: str
    created_at: datetime
    address: str
    hostnames: list[str]
    zone: str
    protocol: str
    port: int | None
    before: dict | None
    after: dict | None
    flapping: bool
    policy_status: str
    risk: int
    run_id: str
    url: str  # the review page of the port, or the host page
    # Where it was seen from (None: before vantage points); named in the text
    # when it is not the zone's home, or when it is a segmentation change.
    vantage: str | None = None
    elsewhere: bool = False

    @property
    def risk_label(self) -> str:
        return Severity(self.risk).label if self.risk != NO_RISK else ""

    @property
    def service(self) -> str:
        state = self.after or self.before or {}
        parts = [state.get("name"), state.get("product"), state.get("version")]
        if state.get("fingerprint"):
            # A certificate change or reminder (certs): which certificate, and until when.
            parts = [
                f"certificate {state.get('subject') or '(no subject)'}",
                f"until {str(state.get('not_after'))[:10]}",
            ]
        if state.get("addresses") is not None:
            # A listener change (the host's own report): the process and where it listens.
            where = ", ".join("every address" if address == "*" else str(address) for address in state["addresses"])
            parts = [str(state.get("process") or ""), f"on {where}" if where else ""]
        return " ".join(str(part) for part in parts if part)

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "host": {"address": self.address, "hostnames": self.hostnames, "zone": self.zone},
            "protocol": self.protocol or None,
            "port": self.port,
            "before": self.before,
            "after": self.after,
            "flapping": self.flapping,
            "policy_status": self.policy_status or None,
            "risk": self.risk_label or None,
            "run": self.run_id or None,
            "vantage": self.vantage,
            "url": self.url,
        }


def event_title(event: dict) -> str:
    """A workers notification in a line (its subject, and the notifications list)."""
    return f"Vantage point {event['vantage']}: {WorkerEvent(event['kind']).label}"


@dataclass
class Message:
    notification: Notification
    lines: list[Line] = field(default_factory=list)
    total: int = 0

    @property
    def more(self) -> int:
        return self.total - len(self.lines)

    @property
    def is_test(self) -> bool:
        return self.notification.kind == NotificationKind.TEST

    @property
    def event(self) -> dict | None:
        """A workers notification's event (alerts.watch): None for changes."""
        return self.notification.event if self.notification.kind == NotificationKind.WORKERS else None

    @property
    def event_text(self) -> str:
        event = self.event
        if event is None:
            return ""
        zone = f" (zone {event['zone']})" if event.get("zone") else ""
        if event["kind"] == WorkerEvent.SILENT:
            return (
                f"Nothing scans from vantage point {event['vantage']}{zone}: its workers are {event['detail']}. "
                "Its scans wait in its queue and its view goes stale (never closed) until a worker is back."
            )
        return f"Vantage point {event['vantage']}{zone} scans again: {', '.join(event['workers']) or 'a worker'}."

    @property
    def vantage_url(self) -> str:
        return absolute(reverse("vantage-detail", args=[self.event["vantage"]])) if self.event else ""

    @property
    def url(self) -> str:
        return absolute(self.notification.get_absolute_url())

    @property
    def subject(self) -> str:
        # A header: no control characters, whatever an admin typed in a channel's name.
        return plain(self._subject())

    def _subject(self) -> str:
        if self.is_test:
            return f"[PortWatch] Test notification to {self.notification.channel.name}"
        if self.event is not None:
            return f"[PortWatch] {event_title(self.event)}"
        prefix = "Digest: " if self.notification.kind == NotificationKind.DIGEST else ""
        if self.total == 1:
            line = self.lines[0]
            where = f"{line.address} {line.port}/{line.protocol}" if line.port is not None else line.address
            status = f" ({line.policy_status})" if line.policy_status else ""
            seen = f" from {line.vantage}" if line.elsewhere else ""
            return f"[PortWatch] {prefix}{where} {line.kind_label}{seen}{status}"
        hosts = len({line.address for line in self.lines})
        on = f" on {hosts} host{'s' if hosts != 1 else ''}" if not self.more else ""
        return f"[PortWatch] {prefix}{self.total} changes{on}"

    def context(self) -> dict:
        return {"message": self, "lines": self.lines, "site_url": settings.SITE_URL}

    def render(self, template: str) -> str:
        return render_to_string(f"alerts/messages/{template}", self.context())

    def as_json(self) -> dict:
        notification = self.notification
        return {
            "id": str(notification.public_id),
            "type": notification.kind,
            "created_at": notification.created_at.isoformat(),
            "channel": notification.channel.name,
            "summary": self.subject.removeprefix("[PortWatch] "),
            "url": self.url,
            "total_changes": self.total,
            "changes": [line.as_json() for line in self.lines],
            # A workers notification: the vantage point, what happened, since when (else null).
            "event": self.event,
        }


def build(notification: Notification) -> Message:
    """Read the notification's changes (the first ALERT_MAX_CHANGES_PER_MESSAGE) into lines."""
    items = notification.items.select_related("change__host__zone", "change__run", "change__vantage").order_by(
        "change__host__address", "change__protocol", "change__port", "change_id"
    )
    total = items.count()
    changes = [item.change for item in items[: settings.ALERT_MAX_CHANGES_PER_MESSAGE]]
    # Policy and risk as the port stands now, in one query.
    port_keys = {(c.host_id, c.protocol, c.port) for c in changes if c.kind not in HOST_CHANGE_KINDS}
    services = {}
    if port_keys:
        rows = Service.objects.filter(host_id__in={key[0] for key in port_keys}).values_list(
            "host_id", "protocol", "port", "policy_status", "risk"
        )
        services = {(h, p, n): (status, risk) for h, p, n, status, risk in rows if (h, p, n) in port_keys}
    lines = []
    for change in changes:
        host = change.host
        is_port = change.kind not in HOST_CHANGE_KINDS
        status, risk = services.get((change.host_id, change.protocol, change.port), ("", NO_RISK))
        if not is_port:
            risk = host.risk
        # A port's link opens its page on the decision form (after login, if need be:
        # the query survives the login page's redirect, a #fragment alone would not).
        url = (
            reverse("port-detail", args=[host.public_id, change.protocol, change.port]) + "?decide=1#decide"
            if is_port
            else host.get_absolute_url()
        )
        lines.append(
            Line(
                id=str(change.public_id),
                kind=change.kind,
                kind_label=change.get_kind_display(),
                created_at=change.created_at,
                address=host.address,
                hostnames=list(host.hostnames or []),
                zone=host.zone.name,
                protocol=change.protocol,
                port=change.port,
                before=change.before,
                after=change.after,
                flapping=change.flapping,
                policy_status=status or "",
                risk=risk if risk is not None else NO_RISK,
                run_id=str(change.run.public_id) if change.run is not None else "",
                url=absolute(url),
                vantage=change.vantage.name if change.vantage_id else None,
                elsewhere=change.vantage_id is not None
                and (change.vantage.home_of_id != host.zone_id or change.kind in SEGMENTATION_KINDS),
            )
        )
    return Message(notification, lines, total)
