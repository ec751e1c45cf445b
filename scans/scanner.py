"""The remote scanner's side: carry out a signed order, send back a signed result. No database.

Runs in ``manage.py run_scanner`` (settings.SCANNER_ONLY: Django's database
is the dummy backend, so a query would raise). An order is checked before
nmap starts: signed with this vantage point's key and not expired, for this
vantage point, its options exactly what ``scans.profiles`` builds
(``orders.check_options``), its targets inside the order's scope and inside
PORTWATCH_SCANNER_ALLOWED_NETWORKS when that is set. Hostnames are resolved
here, where the scan runs. A refused order is answered with a failure (which
the centre does not retry); nmap's own failures are answered as in
``scans.failures`` (transient ones are tried again by the centre).
"""

import ipaddress
import logging
import os
import shutil
import socket
import time
import uuid

from django.conf import settings
from django.utils import timezone

from scans import failures, orders
from scans.choices import ScopeAction
from scans.nmap_runner import NmapNotFound, run_nmap
from scans.scope import Rule, Scope
from scans.targets import TargetSpecError, parse_target, summarize

logger = logging.getLogger(__name__)


class Refused(Exception):
    """The order may not be carried out; the message says why."""


def carry_out(body: dict, signature: str, scanner: str) -> tuple[dict, str] | None:
    """Scan what the order says; the signed result (a failure if it was refused or nmap failed).

    None, and nothing is answered, for an order not signed with this vantage
    point's key (answering would let whoever wrote it fail the centre's
    chunks) or expired (the centre's sweep sends a fresh one).
    """
    try:
        orders.verify(orders.ORDER, body, signature, settings.SCANNER_KEY)
        orders.check_fresh(body, timezone.now())
    except orders.BadMessage as refusal:
        logger.warning("order dropped: %s", refusal)
        return None
    result = {"v": orders.VERSION, "chunk": body.get("chunk"), "vantage": settings.SCANNER_VANTAGE, "scanner": scanner}
    started = time.monotonic()
    try:
        addresses = check_order(body)
        workdir = settings.SCAN_WORK_DIR / f"order-{body['chunk']}-{uuid.uuid4().hex[:8]}"
        try:
            outcome = run_nmap(list(body["options"]), summarize(addresses), workdir, should_stop=lambda: False)
            if outcome.ok:
                result["xml"] = orders.pack(outcome.xml_path.read_bytes())
                result["addresses"] = [str(address) for address in addresses]
            else:
                failure = failures.nmap_exit(outcome.returncode, outcome.stderr)
                result["failure"] = {"message": failure.message, "transient": failure.transient}
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    except (Refused, orders.BadMessage) as refusal:
        logger.warning("order for chunk %s refused: %s", body.get("chunk"), refusal)
        result["failure"] = {"message": f"The scanner {scanner} refused the order: {refusal}", "transient": False}
    except NmapNotFound as error:
        result["failure"] = {"message": f"On scanner {scanner}: {error}", "transient": False}
    except Exception as error:  # reported to the centre, which decides whether to try again
        failure = failures.from_exception(error)
        result["failure"] = {"message": f"On scanner {scanner}: {failure.message}", "transient": failure.transient}
    result.setdefault("addresses", [])
    result["seconds"] = round(time.monotonic() - started, 3)
    return result, orders.sign(orders.RESULT, result, settings.SCANNER_KEY)


def check_order(body: dict) -> list:
    """The addresses a signed order asks to scan, if it may be carried out; Refused or BadMessage otherwise."""
    if body.get("vantage") != settings.SCANNER_VANTAGE:
        raise Refused(f"it is for vantage point {body.get('vantage')!r}, this scanner is {settings.SCANNER_VANTAGE!r}")
    orders.check_options(body.get("options"))
    scope = _scope(body.get("scope"))
    allowed = [ipaddress.ip_network(network, strict=False) for network in settings.SCANNER_ALLOWED_NETWORKS]
    addresses = []
    for text in body.get("targets") or []:
        try:
            item = parse_target(str(text))
        except TargetSpecError as error:
            raise Refused(str(error)) from None
        found = list(item.addresses()) if item.kind != "hostname" else _resolve(item.text)
        for address in found:
            refusal = scope.refusal(address)
            if refusal:
                raise Refused(f"{address} ({item.text}): {refusal}")
            if allowed and not any(address in network for network in allowed):
                raise Refused(f"{address} ({item.text}) is outside PORTWATCH_SCANNER_ALLOWED_NETWORKS")
        addresses.extend(found)
    if not addresses:
        raise Refused("it names nothing to scan")
    return sorted(set(addresses), key=lambda address: (address.version, address))


def _scope(rules) -> Scope:
    if not isinstance(rules, list):
        raise Refused("it carries no scope")
    try:
        parsed = [Rule(ipaddress.ip_network(network, strict=False), ScopeAction(action)) for network, action in rules]
    except (ValueError, TypeError) as error:
        raise Refused(f"its scope is not readable ({error})") from None
    return Scope(parsed)


def _resolve(hostname: str) -> list:
    try:
        infos = socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise Refused(failures.resolution(hostname, error).message) from None
    return [parse_target(info[4][0].split("%")[0]).first for info in infos]


def heartbeat(scanner: str, *, stopping: bool = False) -> tuple[dict, str]:
    body = {
        "v": orders.VERSION,
        "vantage": settings.SCANNER_VANTAGE,
        "scanner": scanner,
        "pid": os.getpid(),
        "at": timezone.now().isoformat(),
        "stopping": stopping,
    }
    return body, orders.sign(orders.HEARTBEAT, body, settings.SCANNER_KEY)
