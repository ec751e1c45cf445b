"""The host's own view: the listening sockets its own tools report (DESIGN.md, "Views of a port").

A HostReport is one report as received (kept for its time, format and who
sent it); Listener rows are the sockets the host's newest report lists, one
row per (protocol, address, port), replaced as newer reports arrive. A
report older than the newest one is kept but changes nothing.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from inventory.choices import Protocol
from inventory.models import Host
from listeners.choices import Finding, ReportFormat, ReportSource, Scope


class HostReport(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="listener_reports")
    format = models.CharField(max_length=16, choices=ReportFormat.choices)
    # When the host took it: the report's own time (osquery), else when it arrived.
    taken_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=8, choices=ReportSource.choices)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The name the host gave itself, when the report says (osquery's hostIdentifier).
    host_name = models.CharField(max_length=255, blank=True)
    sockets = models.PositiveIntegerField()
    # Rows that were not listening sockets (connections, UNIX sockets).
    skipped = models.PositiveIntegerField(default=0)
    # False: older than the host's newest report when it arrived; kept, changed nothing.
    applied = models.BooleanField(default=True)

    class Meta:
        ordering = ["-taken_at", "-id"]
        indexes = [models.Index(fields=["host", "-taken_at", "-id"], name="hostreport_host_idx")]

    def __str__(self):
        return f"{self.host.address}: {self.sockets} sockets ({self.format}) at {self.taken_at:%Y-%m-%d %H:%M}"


class Listener(models.Model):
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="listeners")
    report = models.ForeignKey(HostReport, on_delete=models.CASCADE, related_name="listeners")
    protocol = models.CharField(max_length=4, choices=Protocol.choices)
    # As the ipaddress module writes it, or "*" (every address, IPv4 and IPv6).
    address = models.CharField(max_length=45)
    port = models.PositiveIntegerField()
    interface = models.CharField(max_length=64, blank=True)
    scope = models.CharField(max_length=8, choices=Scope.choices)
    process = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    user = models.CharField(max_length=150, blank=True)
    first_seen = models.DateTimeField()

    class Meta:
        ordering = ["protocol", "port", "address"]
        constraints = [
            models.UniqueConstraint(fields=["host", "protocol", "port", "address"], name="listener_unique_socket"),
        ]
        indexes = [models.Index(fields=["protocol", "port", "scope"], name="listener_port_idx")]

    def __str__(self):
        return f"{self.host.address} {self.protocol} {self.address}:{self.port}"


class PortFinding(models.Model):
    """A host's port judged from its newest report and every vantage point's view (``listeners.findings``).

    Kept whenever a report arrives or a scan changes what the host's ports
    look like, so the lists' filters and the overview's counts read rows
    instead of judging every host. ``taken_at`` is the report's: a finding
    counts while the report is fresh (``LISTENER_REPORT_MAX_AGE_HOURS``),
    which readers check, so no row waits for a sweep to go stale.
    """

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="port_findings", db_index=False)
    protocol = models.CharField(max_length=4, choices=Protocol.choices)
    port = models.PositiveIntegerField()
    finding = models.CharField(max_length=12, choices=Finding.choices)
    # The widest scope it listens on ("": nothing listens), and whether a vantage point finds it open.
    scope = models.CharField(max_length=8, choices=Scope.choices, blank=True)
    reachable = models.BooleanField()
    taken_at = models.DateTimeField()
    # The port rule saying where these ports may listen (PortRule.listen_on) that a listener of it breaks.
    bind_rule = models.ForeignKey(
        "inventory.PortRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["host", "protocol", "port"], name="portfinding_unique_port"),
        ]
        indexes = [
            models.Index(fields=["finding", "taken_at"], name="portfinding_finding_idx"),
            models.Index(
                fields=["bind_rule"], condition=models.Q(bind_rule__isnull=False), name="portfinding_bind_idx"
            ),
        ]

    def __str__(self):
        return f"{self.host_id} {self.port}/{self.protocol}: {self.finding}"


class FindingsSweep(models.Model):
    """How far the periodic judging of scanned hosts got (``listeners.tasks.judge_scanned_hosts``): one row."""

    until = models.DateTimeField()

    def __str__(self):
        return f"findings judged for hosts scanned until {self.until:%Y-%m-%d %H:%M:%S}"
