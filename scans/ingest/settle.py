"""Settling: what the inventory derives from ports, brought up to date after each batch's writes.

The engines write hosts, services and changes; some things follow from
them that must be right before anyone is told (``changes_recorded``) and
before the next scan is planned against them: discovered hosts' tags and
owner (assignment rules), the rule, status and risk of ports left
undecided, the hosts' port summaries, and the planner's statistics after a
scan that grew the inventory a lot. Engine-agnostic: it reads what the
batch wrote through the ORM.
"""

import logging
import time
from collections import Counter

from django.db import connection
from django.db.models import Q, QuerySet

from inventory import assignment, policy
from inventory.models import Host, Service
from scans.choices import ChangeKind
from scans.ingest.postgres.template import sql
from scans.models import Change, ScanChunk

logger = logging.getLogger(__name__)

# Below this many changes a chunk never triggers ANALYZE (see refresh_statistics).
ANALYZE_MIN_CHANGES = 2000

_SERVICE_ROWS = sql("service_rows", "SELECT reltuples FROM pg_class WHERE oid = '{Service}'::regclass")
_ANALYZE_INVENTORY = sql("analyze_inventory", "ANALYZE {Service}, {Host}, {Change}")


def settle(chunk: ScanChunk, *, after_change: int = 0, renamed_hosts: QuerySet | None = None) -> Counter:
    """Bring what the inventory derives from ports up to date with a batch's writes.

    The batch's changes are the chunk's changes after ``after_change``.
    Newly discovered hosts get their assignment rules' tags and owner, the
    ports the diff engine left undecided (the batched engine inserts them
    so) get their rule, status and risk, and the hosts that changed get their
    summary recounted, with those whose ports were renamed without a change
    (``renamed_hosts``; their risk may differ), and the segmentation
    violations of the hosts the batch changed are brought up to date from the
    run's vantage point (``reach.segmentation``), all before anyone is told
    (``changes_recorded``). Returns the kinds of the changes settling itself
    recorded (segmentation violated or kept).
    """
    started = time.perf_counter()
    changes = Change.objects.filter(chunk=chunk, pk__gt=after_change)
    discovered = changes.filter(kind=ChangeKind.HOST_DISCOVERED)
    if discovered.exists():
        assignment.apply_to_hosts(Host.objects.filter(pk__in=discovered.values("host_id")))
    assigned = time.perf_counter()
    # Rows the diff engine left undecided (on new hosts, or any the batched
    # engine wrote) have a NULL status, found through a partial index: they
    # get rule, status and risk. Their hosts are recounted with those the
    # changes touched.
    pending = Service.objects.filter(policy_status__isnull=True).exclude(host_id__in=changes.values("host_id"))
    quiet_hosts = list(pending.values_list("host_id", flat=True).distinct())
    policy.evaluate(Service.objects.none())
    evaluated = time.perf_counter()
    touched = Q(pk__in=changes.values("host_id")) | Q(pk__in=quiet_hosts)
    # Only when there are any: an OR of two subqueries hides from the planner
    # how few hosts they name, and it recounts every service (230 ms a batch
    # of 16k hosts, against 90 ms).
    if renamed_hosts is not None and renamed_hosts.exists():
        touched |= Q(pk__in=renamed_hosts)
    policy.refresh_hosts(Host.objects.filter(touched))
    summed = time.perf_counter()
    # Engine-agnostic, for every vantage point's scans: the home's changed
    # the inventory, another's its view. After the assignment rules: a
    # discovered host's tags decide which rules govern it.
    from reach import segmentation  # noqa: PLC0415 - reach builds on this package

    recorded = segmentation.settle_batch(chunk, changes)
    logger.debug(
        "policy: assignment %.1f ms, evaluate %.1f ms, host summaries %.1f ms, segmentation %.1f ms",
        (assigned - started) * 1000,
        (evaluated - assigned) * 1000,
        (summed - evaluated) * 1000,
        (time.perf_counter() - summed) * 1000,
    )
    return recorded


def refresh_statistics(changes: int) -> None:
    """ANALYZE the inventory after a scan that grew it by a large fraction.

    Until autovacuum gets to it, the planner would otherwise plan the next
    scan against statistics of a much smaller table, or of rows the policy has
    not evaluated yet (all "pending": the pending-rows index would look
    useless). ANALYZE counts this transaction's own rows; it costs a fraction
    of a second and runs only when the inventory grew by more than a quarter,
    after the policy step so that it sees the rows as they will stay.
    """
    if connection.vendor != "postgresql" or changes < ANALYZE_MIN_CHANGES:
        return
    with connection.cursor() as cursor:
        cursor.execute(_SERVICE_ROWS)
        (known,) = cursor.fetchone()
        if known < 4 * changes:
            cursor.execute(_ANALYZE_INVENTORY)
