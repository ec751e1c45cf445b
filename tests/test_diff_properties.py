"""Properties of the diff engine, over generated scans (hypothesis), on PostgreSQL.

For any inventory and any second scan of it:
- cutting the scan into different chunks, ingested in any order, gives the
  same final inventory and the same change set as one chunk;
- ingesting a chunk again changes nothing and records nothing;
- the set-based SQL engine and the batched Python engine agree exactly.

Each example runs inside a savepoint that is rolled back, so examples start
from the same empty inventory.
"""

from datetime import timedelta
from itertools import pairwise

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from inventory.models import Host, Service, Zone
from inventory.ports import PortSet
from scans.choices import ChunkStatus, RunStatus, Trigger
from scans.ingest.diff import Coverage
from scans.ingest.entry import ingest
from scans.models import Change, ScanChunk, ScanRun
from scans.nmap_xml import ALL_PROTOCOLS, HostObservation, PortObservation

pytestmark = pytest.mark.django_db

ADDRESSES = [f"198.18.30.{n}" for n in range(1, 9)]
PORTS = [22, 80, 443, 3306, 8080]
PROBED = {"tcp": PortSet.parse("1-10000")}
T1 = timezone.now().replace(microsecond=0) - timedelta(hours=2)
T2 = T1 + timedelta(hours=1)

# A service as nmap reports it: a guess by port number, or an identification.
services = st.sampled_from(
    [("", "", False), ("http", "", False), ("http", "nginx 1.22", True), ("http", "nginx 1.26", True)]
)
port_states = st.sampled_from(["open", "open", "closed", "filtered"])
# None: the address was targeted and stayed silent; otherwise its listed ports.
hosts = st.one_of(st.none(), st.dictionaries(st.sampled_from(PORTS), st.tuples(port_states, services), max_size=4))
scans = st.fixed_dictionaries(dict.fromkeys(ADDRESSES, hosts))
timed_out = st.sets(st.sampled_from(ADDRESSES), max_size=2)


def observe(address: str, ports: dict | None, *, gave_up: bool = False) -> HostObservation | None:
    if ports is None:
        return None
    listed = tuple(
        PortObservation("tcp", port, state, name, product, identified=identified)
        for port, (state, (name, product, identified)) in sorted(ports.items())
    )
    # Every probed port nmap did not list was closed.
    return HostObservation(address, True, (), listed, ((ALL_PROTOCOLS, "closed", PortSet()),), gave_up)


def ingest_scan(scan: dict, chunks: list[list[str]], now, *, gave_up=frozenset(), repeat: int | None = None) -> ScanRun:
    run = ScanRun.objects.create(
        zone=Zone.default(), trigger=Trigger.MANUAL, status=RunStatus.RUNNING, targets="198.18.30.0/28", created_at=now
    )
    for index, addresses in enumerate(chunks):
        chunk = ScanChunk.objects.create(run=run, index=index, status=ChunkStatus.RUNNING, attempts=1, started_at=now)
        times = 2 if index == repeat else 1
        for _ in range(times):
            observations = [observe(a, scan[a], gave_up=a in gave_up) for a in addresses]
            ingest(
                run=run,
                chunk=chunk,
                zone=run.zone,
                coverage=Coverage(frozenset(addresses), PROBED, complete=True, observed_at=now),
                observations=[o for o in observations if o is not None],
                now=now,
            )
    return run


def snapshot(run: ScanRun) -> tuple:
    hosts = frozenset(Host.objects.values_list("address", "status", "last_seen"))
    services = frozenset(
        Service.objects.values_list(
            "host__address", "protocol", "port", "state", "name", "product", "identified", "stale", "flapping"
        )
    )
    changes = sorted(
        (address, kind, protocol, port or 0, repr(before), repr(after))
        for address, kind, protocol, port, before, after in Change.objects.filter(run=run).values_list(
            "host__address", "kind", "protocol", "port", "before", "after"
        )
    )
    return hosts, services, tuple(changes), Change.objects.count()


def outcome(first: dict, second: dict, chunks: list[list[str]], *, gave_up=frozenset(), repeat=None) -> tuple:
    """Ingest ``first`` whole, then ``second`` in ``chunks``; snapshot; roll back."""
    with transaction.atomic():
        ingest_scan(first, [ADDRESSES], T1)
        run = ingest_scan(second, chunks, T2, gave_up=gave_up, repeat=repeat)
        result = snapshot(run)
        transaction.set_rollback(True)
    return result


@st.composite
def chunkings(draw):
    """A partition of the addresses into chunks, in a random order."""
    order = draw(st.permutations(ADDRESSES))
    cuts = sorted(draw(st.sets(st.integers(1, len(ADDRESSES) - 1), max_size=4)))
    bounds = [0, *cuts, len(ADDRESSES)]
    return [list(order[start:end]) for start, end in pairwise(bounds)]


PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY_SETTINGS
@given(first=scans, second=scans, chunks=chunkings(), gave_up=timed_out, data=st.data())
def test_chunking_order_and_redelivery_do_not_change_the_outcome(db, first, second, chunks, gave_up, data):
    whole = outcome(first, second, [ADDRESSES], gave_up=gave_up)
    assert outcome(first, second, chunks, gave_up=gave_up) == whole
    assert outcome(first, second, chunks[::-1], gave_up=gave_up) == whole
    redelivered = data.draw(st.integers(0, len(chunks) - 1))
    assert outcome(first, second, chunks, gave_up=gave_up, repeat=redelivered) == whole


@PROPERTY_SETTINGS
@given(first=scans, second=scans, chunks=chunkings(), gave_up=timed_out)
def test_the_sql_and_python_engines_agree(db, settings, first, second, chunks, gave_up):
    settings.INGEST_SQL_ENGINE = True
    sql = outcome(first, second, chunks, gave_up=gave_up)
    settings.INGEST_SQL_ENGINE = False
    python = outcome(first, second, chunks, gave_up=gave_up)
    assert sql == python
