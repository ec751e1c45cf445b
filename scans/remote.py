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
the chunk was last sent with, and that every address it scanned is one the
chunk's targets name (or, for a hostname, one the scope allows).
"""

import logging
import shutil
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reach.models import VantagePoint
from scans import chunks, failures, orders
from scans.chunks import ChunkOutcome
from scans.models import ScanChunk, ScanRun, ScopeRule, WorkerHeartbeat
from scans.scope import Scope
from scans.services import finalize_run
from scans.targets import TargetSpecError, parse_target

logger = logging.getLogger(__name__)


def order_for(chunk: ScanChunk, now: datetime | None = None) -> tuple[dict, str]:
    """The signed order for ``chunk`` of a remote vantage point's run."""
    now = now or timezone.now()
    run = chunk.run
    vantage = run.vantage
    body = {
        "v": orders.VERSION,
        "chunk": chunk.pk,
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
    chunk = ScanChunk.objects.select_related("run__vantage", "run__zone").filter(pk=body.get("chunk")).first()
    if chunk is None:
        return ChunkOutcome.GONE
    vantage = chunk.run.vantage
    if not vantage.remote or body.get("vantage") != vantage.name:
        raise orders.BadMessage(f"chunk {chunk.pk} is not scanned by vantage point {body.get('vantage')!r}")
    orders.verify(orders.RESULT, body, signature, vantage.key)
    addresses = _checked_addresses(chunk, body.get("addresses"))
    xml = orders.unpack(body["xml"]) if body.get("xml") else None

    claim = chunks.claim(chunk.pk, f"{body.get('scanner', '?')} (remote)")
    if not isinstance(claim, ScanChunk):
        return claim  # terminal already (a result delivered twice, a cancelled run) or busy
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
    hostnames = any(item.kind == "hostname" for item in named)
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


def _names(item, address) -> bool:
    """Whether a target item (an address, network or range) includes ``address``."""
    return item.first is not None and item.first.version == address.version and item.first <= address <= item.last


def accept_heartbeat(body: dict, signature: str) -> None:
    """A remote scanner says it is alive: it counts as a worker of its vantage point's queue."""
    vantage = VantagePoint.objects.filter(name=body.get("vantage"), remote=True).select_related("home_of").first()
    if vantage is None:
        raise orders.BadMessage(f"no remote vantage point {body.get('vantage')!r}")
    orders.verify(orders.HEARTBEAT, body, signature, vantage.key)
    name = str(body.get("scanner", ""))[:200]
    now = timezone.now()
    if body.get("stopping"):
        WorkerHeartbeat.objects.filter(name=name).delete()
        return
    with transaction.atomic():
        WorkerHeartbeat.objects.update_or_create(
            name=name,
            defaults={"queues": [vantage.queue], "pid": None, "seen_at": now},
            create_defaults={"queues": [vantage.queue], "pid": None, "seen_at": now, "started_at": now},
        )


def is_remote(run: ScanRun) -> bool:
    return run.vantage is not None and run.vantage.remote
