"""Windows PowerShell: ``Get-NetTCPConnection`` and ``Get-NetUDPEndpoint`` as JSON.

    @{TCP = @(Get-NetTCPConnection -State Listen | Select-Object LocalAddress, LocalPort, State, OwningProcess);
      UDP = @(Get-NetUDPEndpoint | Select-Object LocalAddress, LocalPort, OwningProcess)} | ConvertTo-Json

Also a bare array (or, for one socket, an object: ConvertTo-Json's way) of
either cmdlet's objects, whole or selected: a TCP connection has a State
(2 or "Listen" is a listener; other states are connections, skipped), a UDP
endpoint none. Windows PowerShell 5.1 writes UTF-16: the upload decodes it.
"""

from listeners.parsing.sockets import ParsedReport, ReportError, Socket, digits, normal_address, shown

FORMAT = "powershell"
LISTEN = (2, "2", "Listen")


def looks_like(document) -> bool:
    if isinstance(document, dict):
        keys = {key.upper() for key in document}
        return "LOCALPORT" in keys or (bool(keys) and keys <= {"TCP", "UDP"})
    return (
        isinstance(document, list) and bool(document) and isinstance(document[0], dict) and "LocalPort" in document[0]
    )


def parse(document) -> ParsedReport:
    report = ParsedReport(FORMAT)
    if isinstance(document, dict) and "LocalPort" not in document:
        groups = [(key.lower(), value) for key, value in document.items()]
    else:
        groups = [(None, document)]
    for protocol, group in groups:
        if protocol not in (None, "tcp", "udp"):
            raise ReportError(f"{shown(protocol)}: expected TCP and UDP lists")
        if group is None:
            continue
        items = [group] if isinstance(group, dict) else group
        if not isinstance(items, list):
            raise ReportError(f"{protocol.upper() if protocol else 'the document'}: expected a list of sockets")
        for index, item in enumerate(items, start=1):
            socket = _socket(item, protocol, index)
            if socket is None:
                report.skipped += 1
            else:
                report.sockets.append(socket)
    return report


def _socket(item, protocol: str | None, index: int) -> Socket | None:
    where = f"socket {index}: "
    if not isinstance(item, dict) or "LocalPort" not in item or "LocalAddress" not in item:
        raise ReportError(f"{where}no LocalAddress and LocalPort")
    cim_class = str(item.get("CimClass") or item.get("CimClassName") or "")
    if protocol is None:
        protocol = "udp" if "UDP" in cim_class.upper() or "State" not in item else "tcp"
    if protocol == "tcp" and item.get("State") not in LISTEN:
        return None  # a connection, not a listener
    port = item["LocalPort"]
    if isinstance(port, bool) or not isinstance(port, (int, str)) or not digits(str(port)):
        raise ReportError(f"{where}LocalPort {shown(str(port))} is not a number")
    port = int(port)
    if not 0 < port <= 65535:
        raise ReportError(f"{where}{port} is not a port (1-65535)")
    address = str(item["LocalAddress"] or "")
    interface = ""
    if "%" in address:
        address, interface = address.split("%", 1)
    pid = item.get("OwningProcess")
    process = item.get("ProcessName") or item.get("OwningProcessName") or ""
    try:
        address = normal_address(address, None)
    except ReportError as error:
        raise ReportError(f"{where}{error}") from None
    return Socket(
        protocol,
        address,
        port,
        interface[:64],
        process=str(process)[:255],
        pid=int(pid) if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None,
    )
