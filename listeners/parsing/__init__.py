"""Reading a host's listening sockets from the tools hosts already have.

``parse(text, format)`` (the format detected when not given) returns a
``ParsedReport`` or raises ``ReportError`` naming the line: pure, like the
nmap reader, so a bad report writes nothing. ``decode`` turns an upload's
bytes into text (UTF-8, or the UTF-16 Windows PowerShell 5.1 writes).
"""

import json

from listeners.parsing import netstat, osquery, powershell, ss
from listeners.parsing.sockets import BindScope, ParsedReport, ReportError, Socket, bind_scope, capped, shown

__all__ = ["FORMATS", "BindScope", "ParsedReport", "ReportError", "Socket", "bind_scope", "decode", "detect", "parse"]

# name: what produces it
FORMATS = {
    ss.FORMAT: "Linux ss -Htulnp (or ss -tulnp)",
    netstat.LINUX: "Linux netstat -tulnp",
    osquery.FORMAT: "osquery listening_ports (osqueryi --json, or osqueryd's result log)",
    powershell.FORMAT: "Windows Get-NetTCPConnection / Get-NetUDPEndpoint | ConvertTo-Json",
    netstat.WINDOWS: "Windows netstat -ano",
}


def decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif len(data) >= 2 and data[1:2] == b"\x00" and data[0:1] != b"\x00":
        encoding = "utf-16-le"  # UTF-16 without its mark
    else:
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        raise ReportError(f"not text in UTF-8 or UTF-16 (byte {error.start:,})") from None
    if "\x00" in text:
        raise ReportError("a NUL character: not a text report")
    return text


def detect(text: str) -> str:
    stripped = text.lstrip()
    if not stripped:
        raise ReportError("the report is empty")
    if stripped[0] in "[{":
        return _detect_json(stripped)
    first = stripped.splitlines()[0]
    for looks_like, name in (
        (ss.looks_like, ss.FORMAT),
        (netstat.looks_like_linux, netstat.LINUX),
        (netstat.looks_like_windows, netstat.WINDOWS),
    ):
        if looks_like(first):
            return name
    number = text[: len(text) - len(stripped)].count("\n") + 1
    raise ReportError(f"not a report PortWatch reads ({', '.join(FORMATS)}): it starts {shown(first)}", number)


def _detect_json(text: str) -> str:
    try:
        document = _json(text)
    except json.JSONDecodeError as error:
        first = text.splitlines()[0]
        try:
            if osquery.is_log_line(_json(first)):
                return osquery.FORMAT
        except json.JSONDecodeError:
            pass
        raise ReportError(f"not JSON ({error.msg})", error.lineno) from None
    if osquery.is_log_line(document) or (isinstance(document, list) and (not document or osquery.is_row(document[0]))):
        return osquery.FORMAT
    if powershell.looks_like(document):
        return powershell.FORMAT
    raise ReportError("JSON, but neither osquery's listening_ports nor Get-NetTCPConnection / Get-NetUDPEndpoint")


def parse(text: str, format: str | None = None) -> ParsedReport:
    try:
        report = _parse(text, format)
    except ReportError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as error:
        # A shape no parser foresaw: still a clear refusal, never a server error.
        raise ReportError(f"not a report PortWatch can read ({type(error).__name__}: {shown(str(error))})") from None
    report.sockets = [capped(socket) for socket in report.sockets]
    return report


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as error:  # nested too deep, numbers too long
        raise ReportError(f"JSON PortWatch will not read: {shown(str(error))}") from None


def _parse(text: str, format: str | None) -> ParsedReport:
    format = format or detect(text)
    if format not in FORMATS:
        raise ReportError(f"{shown(format)} is not a format PortWatch reads ({', '.join(FORMATS)})")
    if format == ss.FORMAT:
        return ss.parse(text)
    if format == netstat.LINUX:
        return netstat.parse_linux(text)
    if format == netstat.WINDOWS:
        return netstat.parse_windows(text)
    stripped = text.strip()
    if format == osquery.FORMAT:
        try:
            document = _json(stripped)
        except json.JSONDecodeError:
            return osquery.parse_log(text)
        if isinstance(document, dict):
            return osquery.parse_log(stripped)
        if not isinstance(document, list):
            raise ReportError("osquery: expected osqueryi --json's array of rows, or osqueryd's result lines")
        return osquery.parse_rows(document)
    try:
        document = _json(stripped)
    except json.JSONDecodeError as error:
        raise ReportError(f"not JSON ({error.msg})", error.lineno) from None
    return powershell.parse(document)
