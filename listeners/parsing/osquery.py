"""osquery's ``listening_ports`` table: ``osqueryi --json`` output and osqueryd's result log.

osqueryi --json "SELECT * FROM listening_ports" (optionally joined with
``processes`` for ``name`` and ``users`` for ``username``) prints one JSON
array of rows; every value is a string:
    [{"address": "0.0.0.0", "family": "2", "fd": "3", "pid": "700", "port": "22", "protocol": "6", ...}]

osqueryd's result log has one JSON object a line, for each scheduled query:
a snapshot (``"snapshot": [rows]``), differential events (``"columns":
{row}`` with ``"action": "added"`` or ``"removed"``), or batched differences
(``"diffResults": {"added": [...], "removed": [...]}``). The listeners are
the last snapshot with the differences after it; differences alone only
from the query's first run (counter 0, when every row is "added"), else the
start is missing. Lines of other queries are skipped.

UNIX sockets (family 1) are skipped; protocol 6 is TCP, 17 UDP, 132 SCTP.
"""

import json
from datetime import UTC, datetime

from listeners.parsing.sockets import ParsedReport, ReportError, Socket, digits, normal_address, shown

FORMAT = "osquery"
_PROTOCOLS = {"6": "tcp", "17": "udp", "132": "sctp"}
_ROW_KEYS = {"port", "address", "protocol"}


def is_row(row) -> bool:
    return isinstance(row, dict) and row.keys() >= _ROW_KEYS


def is_log_line(item) -> bool:
    return isinstance(item, dict) and "name" in item and bool({"snapshot", "columns", "diffResults"} & item.keys())


def parse_rows(document: list, number: int | None = None, report: ParsedReport | None = None) -> ParsedReport:
    """``osqueryi --json``'s array of rows."""
    report = report or ParsedReport(FORMAT)
    seen: dict[tuple, Socket] = {}
    for index, row in enumerate(document, start=1):
        socket = _socket(row, number, index)
        if socket is None:
            report.skipped += 1
        else:
            seen[_key(row)] = socket
    report.sockets = list(seen.values())
    return report


def parse_log(text: str) -> ParsedReport:
    """osqueryd's result log: JSON lines."""
    report = ParsedReport(FORMAT)
    state: dict[tuple, Socket] | None = None
    last_time = None
    queries: set[str] = set()  # the names of the queries whose rows are listening_ports rows
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise ReportError(f"not JSON ({error.msg}): {shown(line)}", number) from None
        if not is_log_line(item):
            raise ReportError("not an osqueryd result line (no name with snapshot, columns or diffResults)", number)
        rows = item.get("snapshot") if "snapshot" in item else ([item["columns"]] if "columns" in item else [])
        differences = item.get("diffResults") or {}
        if not isinstance(rows, list) or not isinstance(differences, dict):
            raise ReportError("snapshot must be a list of rows, diffResults a mapping of added and removed", number)
        for action in ("added", "removed"):
            if not isinstance(differences.get(action) or [], list):
                raise ReportError(f"diffResults' {action} must be a list of rows", number)
        sample = rows or differences.get("added") or differences.get("removed") or []
        name = str(item["name"])
        if sample and is_row(sample[0]):
            queries.add(name)
        elif name not in queries:
            # Another query's results (an empty snapshot of the listeners' query counts: all closed).
            report.skipped += 1
            continue
        if item.get("action") == "snapshot":
            state = {}
            for index, row in enumerate(rows, start=1):
                _apply(state, row, "added", number, index, report=report)
        else:
            if state is None:
                counter = item.get("counter")
                if counter not in (None, 0, "0"):
                    raise ReportError(
                        f"the log starts at run {counter} of query {shown(str(item['name']))}: its earlier results "
                        "are missing (schedule listening_ports as a snapshot query, or send the log from its start)",
                        number,
                    )
                state = {}
            if "columns" in item:
                _apply(state, item["columns"], item.get("action"), number, 1, report=report)
            for action in ("removed", "added"):
                for index, row in enumerate(differences.get(action) or [], start=1):
                    _apply(state, row, action, number, index, report=report)
        host_name = item.get("hostIdentifier")
        if isinstance(host_name, str):
            report.host_name = host_name[:255]
        last_time = item.get("unixTime", last_time)
    if state is None:
        raise ReportError("no listening_ports results in this log (rows with port, address and protocol)")
    report.sockets = list(state.values())
    if last_time is not None:
        try:
            report.taken_at = datetime.fromtimestamp(int(last_time), tz=UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            raise ReportError(f"unixTime {shown(str(last_time))} is not a time") from None
    return report


def _apply(state: dict, row, action, number: int, index: int, *, report: ParsedReport) -> None:
    if action not in ("added", "removed", "snapshot"):
        raise ReportError(f"action {shown(str(action))} is neither added nor removed", number)
    socket = _socket(row, number, index)
    if socket is None:
        report.skipped += 1
    elif action == "removed":
        state.pop(_key(row), None)
    else:
        state[_key(row)] = socket


def _key(row: dict) -> tuple:
    return tuple(str(row.get(name)) for name in ("protocol", "address", "port", "pid", "fd"))


def _socket(row, number: int | None, index: int) -> Socket | None:
    where = f"row {index}: "
    if not is_row(row):
        raise ReportError(f"{where}not a listening_ports row (port, address and protocol)", number)
    values = {key: "" if value is None else str(value) for key, value in row.items()}
    if values.get("family") == "1" or (values["protocol"] in ("", "0") and values.get("path")):
        return None  # a UNIX socket
    protocol = _PROTOCOLS.get(values["protocol"])
    if protocol is None:
        raise ReportError(f"{where}protocol {shown(values['protocol'])} is not 6 (TCP), 17 (UDP) or 132 (SCTP)", number)
    if not digits(values["port"].removeprefix("-")):
        raise ReportError(f"{where}port {shown(values['port'])} is not a number", number)
    port = int(values["port"])
    if port == 0:
        return None  # bound to no port yet
    if not 0 < port <= 65535:
        raise ReportError(f"{where}{port} is not a port (1-65535)", number)
    address = normal_address(values["address"], number) if values["address"] else "*"
    pid = values.get("pid", "")
    return Socket(
        protocol,
        address,
        port,
        process=(values.get("name") or values.get("process_name") or "")[:255],
        pid=int(pid) if digits(pid) else None,
        user=(values.get("username") or values.get("user") or (f"uid {values['uid']}" if values.get("uid") else ""))[
            :150
        ],
    )
