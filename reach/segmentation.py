"""Segmentation rules, held to what each vantage point sees (DESIGN.md, "Views of a port").

An *exposure* is a host's port that a vantage point reaches: (host,
protocol, port, vantage point). For a zone's home vantage point it is an
open Service of the zone's hosts (the inventory is the home's view); for
any other vantage point, an open PortView of its own.

Which rule governs an exposure is decided per vantage point: a ``deny`` or
``allow`` rule speaks about the vantage points it lists, an ``only`` rule
about every vantage point (those it lists may reach, the others may not).
Of the unexpired rules that match the host (scope), protocol and port and
speak about the exposure's vantage point, the most specific wins, in port
rules' order (``SegmentationRule.specificity``); on a tie the rule that
forbids wins, then the newest. So a narrower rule refines a broader one for
the vantage points it names and leaves the others to it: "nothing in dc1
from office-lan" (deny) with "443 in dc1 from office-lan" (allow) keeps
every other port of dc1 away from office-lan.

A violation is an exposure whose winning rule forbids it. The violations are
a table (``SegmentationViolation``), kept exact by ``reconcile``: it reads
what the database holds now, for the exposures a caller names, and brings
the table in line, recording a change when a violation begins
(``segmentation_violated``) or ends (``segmentation_kept``), carrying the
vantage point. A stale exposure (the host stopped answering that vantage
point, so its state is the last one seen) neither begins nor ends a
violation: what was violated stays violated while nobody can look, and what
was not does not start to be until the port is seen open again. A rule that
changes still ends a violation it no longer forbids, stale or not.

Everything here is set-based: a few statements with correlated subqueries,
on PostgreSQL and SQLite alike, whatever the number of exposures. Who calls
what:

- after every batch of every scan, for the hosts whose changes it recorded,
  from the run's vantage point (``settle_batch``, from ``scans.ingest.settle``):
  the changes are the scan's, so a redelivered chunk (which the ingest
  skips) records none twice, and each is unique per run like the others;
- a rule created or edited (``rule_changed``): the pages, the API and the
  baseline import write rules through ``reach.segmentation_writes``, which
  audits them at once and has a worker judge them (a zone-wide rule can
  begin hundreds of thousands of violations: not a request's work);
- a rule removed: it expires at once and is deleted when its expiry is
  applied (``expire``), its violations falling to the next rule or ending;
- a host's tags or zone changed (``inventory.signals.hosts_rescoped``);
- a rule that expired (``expire``, from the periodic task ``reach.tasks``).

Changes that follow from a rule have no run; they are announced to the alert
outbox (``changes_recorded``) under their own key.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, JSONObject
from django.utils import timezone

from inventory.choices import ANY_PROTOCOL, PortState, RuleScope
from inventory.lookups import in_cidr
from inventory.models import Host, HostTag, Service
from reach.models import PortView, SegmentationRule, SegmentationRuleVantage, SegmentationViolation, VantagePoint
from reach.segmentation_choices import SPEAKS_FOR_ALL, SegmentationMode
from scans.choices import SEGMENTATION_KINDS, ChangeKind
from scans.models import Change, ScanChunk, ScanRun
from scans.signals import changes_recorded

# Above this many distinct port ranges among the rules, exposures are not
# narrowed to the rules' ports before the rules are matched (the condition
# would cost more than it saves).
MAX_PREFILTER_RANGES = 64


@dataclass
class Outcome:
    """What a reconciliation recorded."""

    violated: int = 0
    kept: int = 0

    def __add__(self, other: "Outcome") -> "Outcome":
        return Outcome(self.violated + other.violated, self.kept + other.kept)

    @property
    def kinds(self) -> Counter:
        counts = Counter({ChangeKind.SEGMENTATION_VIOLATED: self.violated, ChangeKind.SEGMENTATION_KEPT: self.kept})
        return +counts  # without the zeros


# --- which rule governs an exposure ---------------------------------------------------------


def verdict(now: datetime, *, vantage: str, excluding: int | None = None) -> Subquery:
    """For the exposure of the outer query: the winning rule's id if it forbids, 0 if it allows, NULL if none speaks.

    The outer query has ``host_id``, ``protocol`` and ``port``, and the
    vantage point's id in the column or annotation named ``vantage``.
    ``excluding`` leaves one rule out (one about to be deleted).
    """
    host = Host.objects.filter(pk=OuterRef(OuterRef("host_id"))).order_by()
    in_scope = (
        Q(scope=RuleScope.GLOBAL)
        | Q(scope=RuleScope.HOST, host_id=OuterRef("host_id"))
        | Q(scope=RuleScope.ZONE, zone_id=Subquery(host.values("zone_id")[:1]))
        | Q(
            Exists(HostTag.objects.filter(host_id=OuterRef(OuterRef("host_id")), tag_id=OuterRef("tag_id"))),
            scope=RuleScope.TAG,
        )
        | Q(Exists(host.filter(address__in_cidr=OuterRef("cidr"))), scope=RuleScope.CIDR)
    )
    listed = Q(
        Exists(SegmentationRuleVantage.objects.filter(rule_id=OuterRef("pk"), vantage_id=OuterRef(OuterRef(vantage))))
    )
    rules = SegmentationRule.objects.filter(
        Q(protocol=OuterRef("protocol")) | Q(protocol=ANY_PROTOCOL),
        Q(expires_at__isnull=True) | Q(expires_at__gt=now),
        Q(mode__in=SPEAKS_FOR_ALL) | listed,
        in_scope,
        port_start__lte=OuterRef("port"),
        port_end__gte=OuterRef("port"),
    )
    if excluding is not None:
        rules = rules.exclude(pk=excluding)
    forbids = Case(
        When(Q(mode=SegmentationMode.DENY) | (Q(mode=SegmentationMode.ONLY) & ~listed), then=Value(1)),
        default=Value(0),
    )
    # The winner has the greatest rank: specificity, then forbidding, then
    # the newest, packed into one integer (specificity < 2^27, ids < 2^32).
    # One MAX instead of ORDER BY ... LIMIT 1: SQLite cannot order by an
    # expression that refers to the query two levels out (the vantage point).
    rank = (F("specificity") * 2 + forbids) * RANK_SHIFT + F("pk")
    return Subquery(rules.order_by().annotate(verdict=Verdict(rank)).values("verdict"))


RANK_SHIFT = 2**32


class Verdict(Func):
    """Over the speaking rules' ranks: the winner's id if it forbids, 0 if it allows, NULL if there is none."""

    output_field = BigIntegerField()

    def as_sql(self, compiler, connection, **extra_context):
        rank, params = compiler.compile(self.source_expressions[0])
        best = f"MAX({rank})"
        # Integer arithmetic on both databases; MAX(...) * 0 keeps NULL for "no rule".
        sql = (
            f"CASE WHEN ({best} / {RANK_SHIFT}) - ({best} / {RANK_SHIFT * 2}) * 2 = 1 "
            f"THEN {best} - ({best} / {RANK_SHIFT}) * {RANK_SHIFT} ELSE {best} * 0 END"
        )
        return sql, tuple(params) * 5


def governing(host: Host, protocol: str, port: int, vantage: VantagePoint, now: datetime | None = None) -> list:
    """Every rule that speaks about one exposure, the winner first (for a page; a port has few)."""
    now = now or timezone.now()
    tag_ids = set(HostTag.objects.filter(host_id=host.pk).values_list("tag_id", flat=True))
    rules = (
        SegmentationRule.objects.filter(
            Q(protocol=protocol) | Q(protocol=ANY_PROTOCOL),
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            Q(mode__in=SPEAKS_FOR_ALL) | Q(vantage_points=vantage),
            port_start__lte=port,
            port_end__gte=port,
        )
        .distinct()
        .select_related("zone", "tag", "host__zone")
        .prefetch_related("vantage_points")
    )
    matches = {
        RuleScope.GLOBAL: lambda rule: True,
        RuleScope.HOST: lambda rule: rule.host_id == host.pk,
        RuleScope.ZONE: lambda rule: rule.zone_id == host.zone_id,
        RuleScope.TAG: lambda rule: rule.tag_id in tag_ids,
        RuleScope.CIDR: lambda rule: in_cidr(host.address, rule.cidr),
    }
    speaking = [rule for rule in rules if matches[rule.scope](rule)]
    return sorted(speaking, key=lambda rule: (-rule.specificity, -forbids(rule, vantage), -rule.pk))


def forbids(rule: SegmentationRule, vantage: VantagePoint) -> bool:
    """Whether ``rule`` (one that speaks about ``vantage``) forbids it to reach the ports it covers."""
    listed = vantage.pk in {vp.pk for vp in rule.vantage_points.all()}
    return rule.mode == SegmentationMode.DENY or (rule.mode == SegmentationMode.ONLY and not listed)


def ports_of(rule: SegmentationRule) -> Q:
    """The protocol and ports ``rule`` names, as a condition on protocol and port (any scope)."""
    condition = Q(port__gte=rule.port_start, port__lte=rule.port_end)
    if rule.protocol != ANY_PROTOCOL:
        condition &= Q(protocol=rule.protocol)
    return condition


def reach_of(rule: SegmentationRule) -> Q:
    """The exposures (and violations) ``rule`` could govern, as a condition on host, protocol and port.

    Holds for Service, PortView and SegmentationViolation alike: each has those fields.
    """
    condition = ports_of(rule)
    if rule.scope == RuleScope.HOST:
        condition &= Q(host_id=rule.host_id)
    elif rule.scope == RuleScope.ZONE:
        condition &= Q(host__zone_id=rule.zone_id)
    elif rule.scope == RuleScope.TAG:
        condition &= Q(host_id__in=HostTag.objects.filter(tag_id=rule.tag_id).values("host_id"))
    elif rule.scope == RuleScope.CIDR:
        condition &= Q(host__address__in_cidr=rule.cidr)
    return condition


def _rule_ports(now: datetime, vantage: VantagePoint | None) -> Q | None:
    """Only ports some rule could forbid (from ``vantage``, if given) can begin a violation.

    The rules are few: their ranges are read and merged here, so that the
    exposures are narrowed by port (an index range) before any rule is
    matched. None: too many ranges to be worth it.
    """
    rules = SegmentationRule.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).exclude(
        mode=SegmentationMode.ALLOW  # an allow rule never forbids
    )
    if vantage is not None:
        rules = rules.filter(Q(mode__in=SPEAKS_FOR_ALL) | Q(vantage_points=vantage))
    ranges = sorted(set(rules.values_list("port_start", "port_end")))
    merged: list[list[int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if len(merged) > MAX_PREFILTER_RANGES:
        return None
    condition = Q(pk__in=[])
    for start, end in merged:
        condition |= Q(port__gte=start, port__lte=end) if start != end else Q(port=start)
    return condition


# --- keeping the violations -------------------------------------------------------------


def reconcile(
    where: Q,
    *,
    vantage: VantagePoint | None = None,
    also: Q | None = None,
    excluding: int | None = None,
    run: ScanRun | None = None,
    chunk: ScanChunk | None = None,
    now: datetime | None = None,
    rules_changed: bool = True,
) -> Outcome:
    """Bring the violations of the exposures ``where`` names (from ``vantage``, or every vantage point) in line.

    ``where`` is a condition on host, protocol and port (``reach_of``, or
    ``host_id__in``); ``also`` names more violations to look at (those of a
    rule being edited). The changes recorded carry ``run`` and ``chunk``
    (None: a rule's doing). ``rules_changed=False`` (a scan's batch): the
    rules and the hosts' scopes are as they were, so a violation ends only
    because its port closed, and keeps its rule (a rule's expiry is applied
    by ``expire``). Must run inside a transaction.
    """
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # For the rest of the transaction, as the SQL ingest does: the
            # correlated subqueries' estimates trigger JIT compilation, which
            # cost most of a batch's time here (50 of 70 ms) and saved none.
            cursor.execute("SET LOCAL jit = off")
    current = SegmentationViolation.objects.filter((where | also) if also is not None else where)
    if vantage is not None:
        current = current.filter(vantage=vantage)
    outcome = Outcome()

    # 1. Violations that end: no rule forbids them now, or the port is no
    # longer open from there (stale counts as open: it was, last seen).
    open_now = Exists(
        Service.objects.filter(
            host_id=OuterRef("host_id"),
            protocol=OuterRef("protocol"),
            port=OuterRef("port"),
            state=PortState.OPEN,
            host__zone__home_vantage=OuterRef("vantage_id"),
        )
    ) | Exists(
        PortView.objects.filter(
            host_id=OuterRef("host_id"),
            protocol=OuterRef("protocol"),
            port=OuterRef("port"),
            vantage_id=OuterRef("vantage_id"),
            state=PortState.OPEN,
        )
    )
    if rules_changed:
        # The cheap test first: a closed port needs no rule matched.
        judged = current.annotate(verdict=Coalesce(verdict(now, vantage="vantage_id", excluding=excluding), 0))
        ending = judged.filter(~Q(open_now) | Q(verdict=0))
    else:
        ending = current.filter(~Q(open_now))
    # Marked first (since NULL), so that a concurrent reconciliation that
    # ends the same rows waits for this one and then finds them gone.
    if SegmentationViolation.objects.filter(pk__in=ending.values("pk")).update(since=None):
        outcome.kept = _record(ChangeKind.SEGMENTATION_KEPT, run=run, chunk=chunk, now=now)
        SegmentationViolation.objects.filter(since__isnull=True).delete()

    # 2. Violations that go on under another rule (a narrower one was added, say).
    if rules_changed:
        moved = judged.exclude(rule_id=F("verdict")).values("pk")
        SegmentationViolation.objects.filter(pk__in=moved).update(
            rule_id=verdict(now, vantage="vantage_id", excluding=excluding)
        )

    # 3. Violations that begin: exposures seen open (not stale) that the
    # winning rule forbids and that are not violations already.
    ports = _rule_ports(now, vantage)
    if ports is not None:
        where &= ports
    inserted = 0
    for exposures in _exposures(where, vantage):
        inserted += _insert_new(exposures, now, excluding)
    if inserted:
        outcome.violated = _record(ChangeKind.SEGMENTATION_VIOLATED, run=run, chunk=chunk, now=now)
        SegmentationViolation.objects.filter(since__isnull=True).update(since=now)
    return outcome


def _exposures(where: Q, vantage: VantagePoint | None) -> list[QuerySet]:
    """The open, fresh exposures ``where`` names, as querysets with ``host_id, protocol, port, exposure_vantage``."""
    home = Service.objects.filter(where, state=PortState.OPEN, stale=False).annotate(
        exposure_vantage=F("host__zone__home_vantage__id")
    )
    views = PortView.objects.filter(where, state=PortState.OPEN, stale=False).annotate(exposure_vantage=F("vantage_id"))
    if vantage is not None:
        home, views = home.filter(exposure_vantage=vantage.pk), views.filter(vantage=vantage)
    return [home, views]


def _insert_new(exposures: QuerySet, now: datetime, excluding: int | None) -> int:
    """Insert the violations the exposures begin (``since`` NULL until their changes are recorded)."""
    already = SegmentationViolation.objects.filter(
        host_id=OuterRef("host_id"),
        protocol=OuterRef("protocol"),
        port=OuterRef("port"),
        vantage_id=OuterRef("exposure_vantage"),
    )
    # Sorted: the whole set is judged before the first row is inserted. Else
    # the insert feeds on the judging as it goes, and a plan that checks
    # "not a violation already" by reading the table (one estimated empty:
    # a first rule) reads every row inserted so far for each exposure, each
    # time: 42 s instead of 4 s for a zone-wide rule at 20,000 hosts.
    judged = (
        exposures.filter(~Exists(already))
        .annotate(rule_verdict=verdict(now, vantage="exposure_vantage", excluding=excluding))
        .values_list("host_id", "protocol", "port", "exposure_vantage", "rule_verdict")
        .order_by("host_id", "protocol", "port", "exposure_vantage")
    )
    sql, params = _compiled(judged)
    if sql is None:
        return 0
    table = SegmentationViolation._meta.db_table
    # MATERIALIZED: the rule is matched once per exposure. Inlined, the
    # outer condition on it would match the rules a second time.
    # (The WITH inside the INSERT: SQLite's driver counts the rows of a
    # statement that starts with INSERT only.)
    statement = (
        f"INSERT INTO {table} (host_id, protocol, port, vantage_id, rule_id, since) "  # noqa: S608 - compiled by the ORM
        f"WITH judged (host_id, protocol, port, vantage_id, rule_id) AS MATERIALIZED ({sql}) "
        "SELECT host_id, protocol, port, vantage_id, rule_id, NULL FROM judged WHERE rule_id > 0 "
        # A concurrent reconciliation inserted it first: it recorded the change.
        "ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


class UuidText(Func):
    """A UUID column as its usual text form (SQLite keeps 32 hex digits, PostgreSQL a uuid)."""

    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="CAST(%(expressions)s AS text)", **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        spans = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
        dashed = " || '-' || ".join(f"substr({sql}, {start}, {length})" for start, length in spans)
        return f"lower({dashed})", tuple(params) * len(spans)


def _record(kind: str, *, run: ScanRun | None, chunk: ScanChunk | None, now: datetime) -> int:
    """Record ``kind`` for each violation being worked on (``since`` NULL); return how many were recorded."""
    rows = (
        SegmentationViolation.objects.filter(since__isnull=True)
        .values_list(
            "host_id",
            "protocol",
            "port",
            "vantage_id",
            JSONObject(rule=UuidText("rule__public_id"), mode=F("rule__mode"), vantage=F("vantage__name")),
        )
        .order_by()
    )
    sql, params = _compiled(rows)
    if sql is None:
        return 0
    state = ("NULL", "state") if kind == ChangeKind.SEGMENTATION_VIOLATED else ("state", "NULL")
    new_id = "gen_random_uuid()" if connection.vendor == "postgresql" else "lower(hex(randomblob(16)))"
    statement = (
        f"INSERT INTO {Change._meta.db_table} (public_id, run_id, chunk_id, vantage_id, host_id, kind, "  # noqa: S608 - compiled by the ORM
        "protocol, port, before, after, flapping, created_at) "
        f"WITH violation (host_id, protocol, port, vantage_id, state) AS ({sql}) "
        f"SELECT {new_id}, %s, %s, vantage_id, host_id, %s, protocol, port, {state[0]}, {state[1]}, %s, %s "
        "FROM violation "
        # WHERE true: SQLite would read ON CONFLICT as a join's ON. A conflict
        # is the same change of the same run: recorded already.
        "WHERE true ON CONFLICT DO NOTHING"
    )
    values = [
        run.pk if run else None,
        chunk.pk if chunk else None,
        str(kind),
        False,
        connection.ops.adapt_datetimefield_value(now),
    ]
    with connection.cursor() as cursor:
        cursor.execute(statement, [*params, *values])
        return cursor.rowcount


def _compiled(queryset: QuerySet) -> tuple[str | None, tuple]:
    """The queryset's SQL and parameters; (None, ()) when Django knows it selects nothing."""
    try:
        return queryset.query.sql_with_params()
    except EmptyResultSet:
        return None, ()


# --- the callers -------------------------------------------------------------------------


def settle_batch(chunk: ScanChunk, changes: QuerySet) -> Counter:
    """After a scan's batch: the exposures its ``changes`` changed, from the run's vantage point.

    An exposure begins or ends only with a change of its port (opened,
    returned, closed, filtered: from the home or from elsewhere), or when its
    host answers again (its ports were stale: ``host_returned``). So the
    batch's changes name every exposure to look at, and a batch that changed
    nothing costs nothing, whatever the number of violations. The changes
    recorded are the chunk's, announced with its others.
    """
    if not SegmentationRule.objects.exists() and not SegmentationViolation.objects.exists():
        return Counter()
    run = chunk.run
    kwargs = {
        "vantage": run.vantage or VantagePoint.home(run.zone),
        "run": run,
        "chunk": chunk,
        "now": timezone.now(),
        "rules_changed": False,
    }
    # Two passes, not one condition with OR: each is a semi-join from the
    # batch's few changes into the exposures, which an OR would turn into a
    # scan of every exposure of the vantage point.
    same_port = changes.filter(host_id=OuterRef("host_id"), protocol=OuterRef("protocol"), port=OuterRef("port"))
    outcome = reconcile(Q(Exists(same_port.filter(port__isnull=False))), **kwargs)
    answered = changes.filter(kind__in=[ChangeKind.HOST_RETURNED, ChangeKind.HOST_DISCOVERED])
    if answered.exists():
        outcome += reconcile(Q(host_id__in=answered.values("host_id")), **kwargs)
    return outcome.kinds


def rule_changed(*rules: SegmentationRule | None, now: datetime | None = None) -> Outcome:
    """Re-evaluate what a rule governs; pass it as it was and as it is (None: created or deleted).

    Also every violation that names it, so a rule that shrank lets go of them.
    """
    where, also = Q(pk__in=[]), Q(pk__in=[])
    for rule in rules:
        if rule is not None:
            where |= reach_of(rule)
            if rule.pk:
                also |= Q(rule_id=rule.pk)
    return _announced(where, also=also, now=now)


def delete_rule(rule: SegmentationRule) -> Outcome:
    """Delete ``rule``, its violations falling to the next rule or ending first."""
    with transaction.atomic():
        outcome = _announced(reach_of(rule), also=Q(rule_id=rule.pk), excluding=rule.pk)
        rule.delete()
    return outcome


def hosts_rescoped(hosts: QuerySet) -> Outcome:
    """Hosts whose tags or zone changed: rules of other scopes may govern their exposures now."""
    return _announced(Q(host_id__in=hosts.order_by().values("pk")))


def expire(now: datetime | None = None) -> int:
    """Apply the expiry of the rules that expired since the last call: their reach falls to the next rules.

    A rule someone removed expired at that moment (``segmentation_writes.remove_rule``):
    it is deleted here, once nothing names it.
    """
    now = now or timezone.now()
    done = 0
    due = SegmentationRule.objects.filter(expires_at__lte=now, lapsed=False).order_by("expires_at")
    for rule in due:
        with transaction.atomic():
            # Claimed by a conditional UPDATE: two ticks at once apply it once.
            if SegmentationRule.objects.filter(pk=rule.pk, lapsed=False).update(lapsed=True):
                if rule.removing:
                    delete_rule(rule)
                else:
                    _announced(reach_of(rule), also=Q(rule_id=rule.pk), now=now)
                done += 1
    return done


def _announced(where: Q, **kwargs) -> Outcome:
    """``reconcile`` with no run; the changes it recorded are announced to the alert outbox."""
    now = kwargs.pop("now", None) or timezone.now()
    with transaction.atomic():
        last = Change.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        outcome = reconcile(where, now=now, **kwargs)
        if outcome.violated or outcome.kept:
            recorded = Change.objects.filter(pk__gt=last, run__isnull=True, kind__in=SEGMENTATION_KINDS, created_at=now)
            first = recorded.order_by("pk").values_list("pk", flat=True).first()
            changes_recorded.send(sender=Change, run=None, changes=recorded, key=f"segmentation-{first}")
    return outcome


# Pages and the API count a rule's violations up to this many ("10,000+"):
# a count costs what it counts, and past this it says nothing more.
COUNT_CAP = 10_000


class ViolationCount(Func):
    """The violations of the rule of the outer query, counted up to COUNT_CAP + 1."""

    output_field = IntegerField()

    def __init__(self):
        super().__init__(F("pk"))

    def as_sql(self, compiler, connection, **extra_context):
        rule, params = compiler.compile(self.source_expressions[0])
        table = SegmentationViolation._meta.db_table
        limit = COUNT_CAP + 1
        # The table's name is the model's, the rule's column compiled by the ORM: nothing from a user.
        sql = f"(SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE rule_id = {rule} LIMIT {limit}) AS capped)"  # noqa: S608
        return sql, params
