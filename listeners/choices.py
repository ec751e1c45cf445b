"""The host's own view, named once."""

from django.db import models

from listeners.parsing import FORMATS, BindScope


class ReportFormat(models.TextChoices):
    SS = "ss", FORMATS["ss"]
    NETSTAT = "netstat", FORMATS["netstat"]
    OSQUERY = "osquery", FORMATS["osquery"]
    POWERSHELL = "powershell", FORMATS["powershell"]
    NETSTAT_WINDOWS = "netstat-windows", FORMATS["netstat-windows"]


class Scope(models.TextChoices):
    """Where a socket listens (``listeners.parsing.BindScope``)."""

    ALL = BindScope.ALL, "all interfaces"
    ADDRESS = BindScope.ADDRESS, "one address"
    LOOPBACK = BindScope.LOOPBACK, "loopback only"


# The wider scope wins when a port listens on several addresses (0.0.0.0 and 127.0.0.1, say).
SCOPE_RANK = {Scope.LOOPBACK: 0, Scope.ADDRESS: 1, Scope.ALL: 2}


class ReportSource(models.TextChoices):
    UPLOAD = "upload", "upload page"
    API = "api", "API"
    COMMAND = "command", "manage.py import_listeners"


class Finding(models.TextChoices):
    """A port, the host's report and the vantage points' scans side by side (``listeners.reconcile``)."""

    EXPOSED = "exposed", "listening and reachable"
    SHIELDED = "shielded", "shielded only by a firewall"
    LOCAL = "local", "local (loopback only)"
    FORWARDED = "forwarded", "reachable, not listening"
    UNSCANNED = "unscanned", "listening, not scanned"


# Beside a finding: a listener breaks where a port rule lets the port listen (PortRule.listen_on).
BIND_BROKEN = "bind_broken"
BIND_BROKEN_LABEL = "listening where a rule forbids"
