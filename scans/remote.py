"""The centre's side of remote scanners: signed orders out, signed results and heartbeats in.

A remote vantage point's chunks are not claimed by its scanner (it cannot
reach the database): the centre sends each as an order (``order_for``), and
claims the chunk when the result comes back (``accept_result``), on a central
worker, through the same path as a chunk scanned here: an attempt, the
ingest of nmap's XML into that vantage point's view (or the inventory, for a
zone's home that is remote), or a failure tried again with back-off. A result
that arrives twice is ingested once (the chunk is terminal by then); a lost
order or result is sent again by the sweep once the broker's visibility
timeout has passed; a result for a cancelled run is dropped.

What a result says is checked before anything is written: the signature
(under the key of the vantage point the chunk belongs to, so a scanner of
one vantage point cannot write another's view), that it answers the order
the chunk was last sent with (once: a replayed result is refused), that every
address it scanned is one the chunk's targets name (or, for a hostname, one
the scope allows, at most HOSTNAME_ADDRESSES of them), that every host in its
XML is one of those, and that the XML is of a size a chunk can produce.
"""

import io
import logging
import re
import shutil
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reach.models import VantagePoint
from scans import chunks, failures, orders
from scans.chunks import ChunkOutcome
from scans.models import ScanChunk, ScanRun, ScopeRule, WorkerHeartbeat
from scans.nmap_xml import NmapXmlError, NmapXmlReader
from scans.scope import Scope
from scans.services import finalize_run
from scans.targets import TargetSpecError, parse_target

logger = logging.getLogger(__name__)

# A hostname target may resolve to several addresses; a result lists at most this many for each.
HOSTNAME_ADDRESSES = 16
# A chunk's result inflates to at most this much XML per address (nmap writes a few KiB a host).
XML_BYTES_PER_ADDRESS = 64 << 10
# How far a scanner's clock may be from ours for its heartbeat to count.
HEARTBEAT_SKEW = timedelta(minutes=2)
SCANNER_NAME_MAX = 200
_NOT_NAME = re.compile(r"[^A-Za-z0-9@._:-]")


def order_for(chunk: ScanChunk, order_id: str, now: datetime | None = None) -> tuple[dict, str]:
    """The signed order ``order_id`` for ``chunk`` of a remote vantage point's run (see ``queueing.send``)."""
    now = now or timezone.now()
    run = chunk.run
    vantage = run.vantage
    body = {
        "v": orders.VERSION,
        "chunk": chunk.pk,
        "order": order_id,
        "run": str(run.public_id),
        "vantage": vantage.name,
        "targets": list(chunk.targets),
        "options": list(run.nmap_options),
        "scope": [[str(rule.network), str(rule.action)] for rule in map(ScopeRule.as_rule, ScopeRule.objects.all())],
        "issued_at": now.isoformat(),
        # An order outlives its run's chances of being scanned in time, never much more.
        "expires_at": orders.expiry(now, settings.BROKER_VISIBILITY_TIMEOUT),
    }
    return body, orders.sign(orders.ORDER, body, vantage.key)


def accept_result(body: dict, signature: str) -> ChunkOutcome:
    """Check a scanner's result and ingest it (or record its failure). BadMessage if it must be refused."""
    if not isinstance(body, dict) or not isinstance(body.get("chunk"), int) or not isinstance(signature, str):
        raise orders.BadMessage("the result is not a signed result")
    if len(body.get("xml") or "") > orders.RESULT_MAX_PACKED:
        raise orders.BadMessage("the result is too large")  # before it is serialised to check its signature
    chunk = ScanChunk.objects.select_related("run__vantage", "run__zone").filter(pk=body["chunk"]).first()
    if chunk is None:
        return ChunkOutcome.GONE
    vantage = chunk.run.vantage
    if vantage is None or not vantage.remote or body.get("vantage") != vantage.name:
        raise orders.BadMessage(f"chunk {chunk.pk} is not scanned by vantage point {body.get('vantage')!r}")
    orders.verify(orders.RESULT, body, signature, vantage.key)
    order = body.get("order")
    if not chunk.order_id or order != chunk.order_id:
        # A replay, or the answer to an order sent before the sweep sent a newer one.
        raise orders.BadMessage(f"the result answers order {order!r}, not chunk {chunk.pk}'s current order")
    addresses = _checked_addresses(chunk, body.get("addresses"))
    xml = orders.unpack(body["xml"], limit=_xml_limit(chunk)) if body.get("xml") else None
    if xml is not None:
        _check_hosts(xml, set(addresses), chunk)

    # The order is answered once: a replay of this result is refused from now on.
    if not ScanChunk.objects.filter(pk=chunk.pk, order_id=order).update(order_id=""):
        raise orders.BadMessage(f"chunk {chunk.pk}'s order {order!r} was answered already")
    claim = chunks.claim(chunk.pk, f"{_scanner_name(body.get('scanner'))} (remote)")
    if not isinstance(claim, ScanChunk):
        return claim  # terminal already (a cancelled run), or waiting for its back-off
    chunk = claim
    workdir = settings.SCAN_WORK_DIR / f"chunk-{chunk.pk}-{chunk.attempts}"
    try:
        if body.get("failure"):
            failure = body["failure"]
            chunks.fail(chunk, failures.Failure(str(failure.get("message", ""))[:2000], bool(failure.get("transient"))))
        elif xml is None:
            chunks.fail(chunk, failures.Failure("The scanner sent no result.", False))
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            xml_path = workdir / "result.xml"
            xml_path.write_bytes(xml)
            chunks.ingest_output(chunk, xml_path, addresses, workdir)
    except Exception as error:
        chunks.fail(chunk, failures.from_exception(error))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    finalize_run(chunk.run_id)
    return ChunkOutcome.DONE


def _checked_addresses(chunk: ScanChunk, reported) -> list[str]:
    """The addresses the scanner reports it scanned, if the chunk allows every one of them."""
    if not isinstance(reported, list) or not all(isinstance(address, str) for address in reported):
        raise orders.BadMessage("the result does not list the addresses it scanned")
    named = [parse_target(text) for text in chunk.targets]
    hostnames = sum(1 for item in named if item.kind == "hostname")
    most = sum(item.size for item in named if item.kind != "hostname") + HOSTNAME_ADDRESSES * hostnames
    if len(reported) > most:
        raise orders.BadMessage(f"the result lists {len(reported)} addresses; chunk {chunk.pk} names at most {most}")
    scope = Scope.current()
    checked = []
    for text in reported:
        try:
            address = parse_target(text).first
        except (TargetSpecError, AttributeError):
            raise orders.BadMessage(f"the result names {text[:60]!r}, which is not an address") from None
        covered = any(_names(item, address) for item in named)
        if not covered and not (hostnames and scope.refusal(address) is None):
            raise orders.BadMessage(f"the result names {address}, which chunk {chunk.pk} does not")
        checked.append(str(address))
    return checked


def _xml_limit(chunk: ScanChunk) -> int:
    """The most XML a chunk's result may inflate to: generous for its addresses, never the whole allowance."""
    return min(orders.RESULT_MAX_BYTES, max(1 << 20, (chunk.size or 1) * XML_BYTES_PER_ADDRESS))


def _check_hosts(xml: bytes, addresses: set[str], chunk: ScanChunk) -> None:
    """Every host of nmap's XML is one of the reported (and checked) addresses."""
    try:
        for entry in NmapXmlReader(io.BytesIO(xml)).entries():
            if entry.address not in addresses:
                raise orders.BadMessage(f"the result's XML lists {entry.address}, which chunk {chunk.pk} does not")
    except NmapXmlError as error:
        raise orders.BadMessage(f"the result's XML is not nmap's: {error}") from None


def _scanner_name(name) -> str:
    """A scanner's name as it reports it, reduced to what a node name holds (it is shown on pages)."""
    return _NOT_NAME.sub("", str(name))[:SCANNER_NAME_MAX] or "?"


def _names(item, address) -> bool:
    """Whether a target item (an address, network or range) includes ``address``."""
    return item.first is not None and item.first.version == address.version and item.first <= address <= item.last


def accept_heartbeat(body: dict, signature: str) -> None:
    """A remote scanner says it is alive: it counts as a worker of its vantage point's queue.

    Its row is named after the vantage point as well as the scanner, and only
    such rows are written or deleted: a scanner can never touch a central
    worker's row or another vantage point's. A heartbeat must be recent (the
    scanner's clock within HEARTBEAT_SKEW of ours), so an old one replayed
    neither keeps a dead scanner listening nor makes a live one look stopped.
    """
    if not isinstance(body, dict) or not isinstance(body.get("vantage"), str):
        raise orders.BadMessage("the heartbeat is not a signed heartbeat")
    vantage = VantagePoint.objects.filter(name=body["vantage"], remote=True).select_related("home_of").first()
    if vantage is None:
        raise orders.BadMessage(f"no remote vantage point {body['vantage']!r}")
    orders.verify(orders.HEARTBEAT, body, signature, vantage.key)
    now = timezone.now()
    try:
        sent = datetime.fromisoformat(body["at"])
    except (KeyError, TypeError, ValueError):
        raise orders.BadMessage("the heartbeat has no time") from None
    if sent.tzinfo is None or abs(now - sent) > HEARTBEAT_SKEW:
        raise orders.BadMessage(
            f"the heartbeat was sent at {body['at']!r}: too far from now (replayed, or a clock off)"[:200]
        )
    name = f"{vantage.name}:{_scanner_name(body.get('scanner'))}"[:SCANNER_NAME_MAX]
    ours = WorkerHeartbeat.objects.filter(name=name, queues=[vantage.queue])
    if body.get("stopping"):
        ours.delete()
        return
    with transaction.atomic():
        if WorkerHeartbeat.objects.filter(name=name).exclude(queues=[vantage.queue]).exists():
            raise orders.BadMessage(f"a worker named {name!r} that is not this vantage point's exists")
        WorkerHeartbeat.objects.update_or_create(
            name=name,
            defaults={"queues": [vantage.queue], "pid": None, "seen_at": now},
            create_defaults={"queues": [vantage.queue], "pid": None, "seen_at": now, "started_at": now},
        )


def is_remote(run: ScanRun) -> bool:
    return run.vantage is not None and run.vantage.remote
