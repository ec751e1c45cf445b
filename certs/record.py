"""What a scan's ssl-cert saw, against each port's current certificate.

Called inside the ingest's transaction (``scans.ingest.entry`` sends
``certificates_observed``), after the chunk's ports are written: the port
rows exist, and a chunk ingested twice is ingested once (the ingest's claim),
so ``certificate_changed`` is recorded once per chunk, with its run and chunk,
and announced with the chunk's other changes. Only a scan from the zone's
home: the inventory's ports are its view (another vantage point sees the same
server's certificate, or a middlebox's, which is not the port's).

A port's first certificate is an enrichment, not a change (like a first
service identification); another one than its current is a change. A PEM
that does not parse is logged and skipped: the rest of the scan stands.
"""

import itertools
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from certs.models import Certificate, Sighting
from certs.parsing import CertificateError, CertificateFacts, parse_pem
from inventory.choices import PortState
from inventory.models import Host, Service
from scans.choices import ChangeKind
from scans.models import Change

logger = logging.getLogger(__name__)

# Ports read, parsed and compared at a time: memory stays bounded whatever the scan's size.
BATCH = 500


def observed(*, run, chunk, zone, now: datetime, certificates: Iterable[tuple[str, str, int, str]]) -> Counter:
    """Record the certificates; return the kinds of the changes recorded."""
    recorded = Counter()
    if not run.from_home:
        return recorded
    iterator = iter(certificates)
    while batch := list(itertools.islice(iterator, BATCH)):
        recorded.update(_record_batch(run, chunk, zone, now, batch))
    return recorded


def _record_batch(run, chunk, zone, now: datetime, batch: list[tuple[str, str, int, str]]) -> Counter:
    facts: dict[tuple[str, str, int], CertificateFacts] = {}
    for address, protocol, port, pem in batch:
        try:
            facts[(address, protocol, port)] = parse_pem(pem)
        except CertificateError as error:
            logger.warning("certificate of %s %s/%s not recorded: %s", address, port, protocol, error)
    if not facts:
        return Counter()
    hosts = dict(Host.objects.filter(zone=zone, address__in={key[0] for key in facts}).values_list("address", "pk"))
    if not hosts:
        return Counter()
    # Those hosts' open ports among those numbers (along the (host, protocol, port) index); the exact
    # (address, protocol, port) pairs are picked below.
    services = {
        (service.host_id, service.protocol, service.port): service
        for service in Service.objects.filter(
            host_id__in=hosts.values(), port__in={port for _, _, port in facts}, state=PortState.OPEN
        )
    }
    seen: dict[int, tuple[Service, CertificateFacts]] = {}
    for (address, protocol, port), fact in facts.items():
        service = services.get((hosts.get(address), protocol, port))
        if service is not None:
            seen[service.pk] = (service, fact)
    if not seen:
        return Counter()
    certificates = certificate_rows([fact for _, fact in seen.values()], now)
    # The port rows are where two ingests of one port (overlapping targets) meet: locked in one order,
    # each reads the current certificates only once the other has committed its own.
    list(Service.objects.select_for_update().filter(pk__in=seen).order_by("pk").values_list("pk", flat=True))
    current = {
        sighting.service_id: sighting
        for sighting in Sighting.objects.filter(service_id__in=seen, current=True).select_related("certificate")
    }
    known = {
        (sighting.service_id, sighting.certificate_id): sighting
        for sighting in Sighting.objects.filter(
            service_id__in=seen, certificate_id__in=[certificate.pk for certificate in certificates.values()]
        )
    }
    confirmed, retired, changes = [], [], []
    for service_id, (service, fact) in seen.items():
        certificate = certificates[fact.sha256]
        held = current.get(service_id)
        if held is not None and held.certificate_id == certificate.pk:
            confirmed.append(held.pk)
            continue
        if held is not None:
            retired.append(held.pk)
            changes.append(
                Change(
                    run=run,
                    vantage_id=run.vantage_id,
                    chunk=chunk,
                    host_id=service.host_id,
                    kind=ChangeKind.CERTIFICATE_CHANGED,
                    protocol=service.protocol,
                    port=service.port,
                    before=held.certificate.snapshot(),
                    after=certificate.snapshot(),
                    created_at=now,
                )
            )
    Sighting.objects.filter(pk__in=confirmed).update(last_seen=now)
    # Retired first: one current certificate per port (a partial unique index).
    Sighting.objects.filter(pk__in=retired).update(current=False)
    for service_id, (_, fact) in seen.items():
        certificate = certificates[fact.sha256]
        held = current.get(service_id)
        if held is not None and held.certificate_id == certificate.pk:
            continue
        again = known.get((service_id, certificate.pk))
        if again is not None:
            # Back to a certificate the port served before: the same sighting, current again.
            Sighting.objects.filter(pk=again.pk).update(current=True, last_seen=now)
        else:
            Sighting.objects.create(
                service_id=service_id,
                certificate=certificate,
                current=True,
                first_seen=now,
                last_seen=now,
                not_after=certificate.not_after,
            )
    # A port listed twice in a file is seen twice: its change is recorded once.
    Change.objects.bulk_create(changes, ignore_conflicts=True)
    return Counter(change.kind for change in changes)


def certificate_rows(facts: list[CertificateFacts], now: datetime) -> dict[str, Certificate]:
    """The Certificate rows of ``facts`` by fingerprint, the new ones created (the one place a
    certificate's facts become its columns)."""
    wanted = {fact.sha256: fact for fact in facts}
    rows = {row.sha256: row for row in Certificate.objects.filter(sha256__in=wanted)}
    missing = [
        Certificate(
            sha256=fact.sha256,
            subject=fact.subject,
            issuer=fact.issuer,
            sans=list(fact.sans),
            serial=fact.serial,
            not_before=fact.not_before,
            not_after=fact.not_after,
            key_type=fact.key_type,
            key_bits=fact.key_bits,
            signature_algorithm=fact.signature_algorithm,
            signature_hash=fact.signature_hash,
            self_signed=fact.self_signed,
            weak_key=fact.weak_key,
            pem=fact.pem,
            names="\n".join((fact.subject, *fact.sans)),
            first_seen=now,
        )
        for sha256, fact in wanted.items()
        if sha256 not in rows
    ]
    if missing:
        # Another chunk's transaction may have created one meanwhile: theirs stands.
        Certificate.objects.bulk_create(missing, ignore_conflicts=True)
        rows.update((row.sha256, row) for row in Certificate.objects.filter(sha256__in=[m.sha256 for m in missing]))
    return rows
