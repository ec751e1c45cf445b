"""The policy: which port rule governs each port, and what that makes the port.

Every open port is approved, rejected (a violation until it closes) or
unreviewed. The answer is kept on the Service row (``policy_rule``,
``policy_status``, and ``risk`` from the risk table) and summed up on its
Host, so that lists of a million ports filter and sort on indexed columns
instead of matching rules at read time.

Everything here is set-based: one UPDATE with correlated subqueries decides
the winning rule for any number of ports, on PostgreSQL and SQLite alike
(``address__in_cidr`` is the only non-standard piece, see
``inventory.lookups``). Who calls what:

- the SQL diff engine decides new and renamed ports (another name may be
  another risk) before it writes them (``decision``, through
  ``scans.ingest.postgres.apply.decide_staged``), except on new hosts, which get their
  tags first; the batched engine writes them with a NULL status. The ingest
  then evaluates the NULL rows and recounts the hosts it touched, in its
  transaction, batch by batch (``scans.ingest.settle``);
- saving or deleting a port rule re-evaluates the ports it could touch,
  before and after the edit (``rule_changed``);
- a change of a host's tags or zone re-evaluates that host (``evaluate_hosts``),
  and tells ``inventory.signals.hosts_rescoped`` (segmentation rules follow);
- the scheduler's tick re-evaluates ports whose rule expired (``expire``).
"""

from collections.abc import Iterable
from datetime import datetime

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from inventory.choices import ANY_PROTOCOL, NO_RISK, PolicyStatus, PortState, RuleScope
from inventory.lookups import in_cidr
from inventory.models import Host, HostTag, PortRule, RiskRule, Service
from inventory.signals import hosts_rescoped


def matching_rules(now: datetime) -> QuerySet:
    """Rules that apply to the Service of the outer query, the winner first."""
    host = Host.objects.filter(pk=OuterRef(OuterRef("host_id")))
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
    return (
        PortRule.objects.filter(
            Q(protocol=OuterRef("protocol")) | Q(protocol=ANY_PROTOCOL),
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            in_scope,
            port_start__lte=OuterRef("port"),
            port_end__gte=OuterRef("port"),
        )
        # Most specific first; on a tie rejection wins (the safe answer), then the newest.
        .order_by("-specificity", "-decision", "-pk")
    )


def _risk_of_service() -> Coalesce:
    """Severity for the Service of the outer query: its port's rule, else its service name's."""
    by_port = RiskRule.objects.filter(protocol=OuterRef("protocol"), port=OuterRef("port")).values("severity")[:1]
    by_name = (
        RiskRule.objects.filter(protocol=OuterRef("protocol"), service_name=OuterRef("name"))
        .exclude(service_name="")
        .order_by("-severity")
        .values("severity")[:1]
    )
    return Coalesce(Subquery(by_port), Subquery(by_name), Value(NO_RISK))


def evaluate(services: QuerySet, now: datetime | None = None) -> int:
    """Decide rule, status and risk of ``services``; return how many rows were written.

    The caller refreshes the hosts' summaries (``refresh_hosts``), usually
    once for a whole batch of evaluations.
    """
    # One statement: rule, status and risk are read from the row as it was,
    # so ``services`` may even be defined by the rule being replaced. Rows
    # already pending (NULL status) are always taken along.
    return Service.objects.filter(Q(pk__in=services.order_by().values("pk")) | Q(policy_status__isnull=True)).update(
        **decision(now or timezone.now())
    )


def decision(now: datetime) -> dict:
    """Rule, status and risk of the port of the outer query, as ``update()`` arguments.

    The outer query is a Service, or a port the SQL diff engine is about to
    insert (``scans.models.StagedPort``): anything with host_id, protocol,
    port and name.
    """
    rules = matching_rules(now)
    return {
        "policy_rule": Subquery(rules.values("pk")[:1]),
        "policy_status": Coalesce(Subquery(rules.values("decision")[:1]), Value(PolicyStatus.UNREVIEWED)),
        "risk": _risk_of_service(),
    }


def evaluate_pending(now: datetime | None = None) -> int:
    """Evaluate the rows the diff engine inserted since the last call, and their hosts."""
    pending = Service.objects.filter(policy_status__isnull=True)
    hosts = Host.objects.filter(pk__in=pending.values("host_id"))
    host_ids = list(hosts.values_list("pk", flat=True))
    if not host_ids:
        return 0
    count = evaluate(Service.objects.none(), now)
    refresh_hosts(Host.objects.filter(pk__in=host_ids))
    return count


def evaluate_hosts(hosts: QuerySet, now: datetime | None = None) -> int:
    """Re-evaluate every port of ``hosts`` (their tags, zone or address changed); tell ``hosts_rescoped``."""
    count = evaluate(Service.objects.filter(host__in=hosts.values("pk")), now)
    refresh_hosts(hosts)
    hosts_rescoped.send(sender=Host, hosts=hosts)
    return count


def services_in_reach(rule: PortRule) -> QuerySet:
    """Every port the rule could govern (its scope, protocol and ports), whatever the other rules."""
    services = Service.objects.filter(port__gte=rule.port_start, port__lte=rule.port_end)
    if rule.protocol != ANY_PROTOCOL:
        services = services.filter(protocol=rule.protocol)
    if rule.scope == RuleScope.HOST:
        services = services.filter(host_id=rule.host_id)
    elif rule.scope == RuleScope.ZONE:
        services = services.filter(host__zone_id=rule.zone_id)
    elif rule.scope == RuleScope.TAG:
        services = services.filter(host_id__in=HostTag.objects.filter(tag_id=rule.tag_id).values("host_id"))
    elif rule.scope == RuleScope.CIDR:
        services = services.filter(host__address__in_cidr=rule.cidr)
    return services


def rule_changed(*rules: PortRule | None, now: datetime | None = None) -> int:
    """Re-evaluate what a rule governs; pass the rule as it was and as it is.

    Also re-evaluates the ports that currently point at the rule, so a rule
    that shrank or was deleted lets go of them.
    """
    reach = Q(pk__in=[])
    for rule in rules:
        if rule is not None:
            reach |= Q(pk__in=services_in_reach(rule).values("pk"))
            if rule.pk:
                reach |= Q(policy_rule_id=rule.pk)
    services = Service.objects.filter(reach)
    host_ids = list(services.order_by().values_list("host_id", flat=True).distinct())
    count = evaluate(services, now)
    refresh_hosts(Host.objects.filter(pk__in=host_ids))
    return count


def expire(now: datetime | None = None) -> int:
    """Ports whose rule has expired fall back to the next rule, or to unreviewed."""
    now = now or timezone.now()
    services = Service.objects.filter(policy_rule__expires_at__lte=now)
    host_ids = list(services.order_by().values_list("host_id", flat=True).distinct())
    if not host_ids:
        return 0
    count = evaluate(services, now)
    refresh_hosts(Host.objects.filter(pk__in=host_ids))
    return count


def risk_changed(rules: Iterable[RiskRule]) -> int:
    """The risk table changed: re-rate the ports the given rules (old and new) match."""
    match = Q(pk__in=[])
    for rule in rules:
        if rule.port is not None:
            match |= Q(protocol=rule.protocol, port=rule.port)
        if rule.service_name:
            match |= Q(protocol=rule.protocol, name=rule.service_name)
    services = Service.objects.filter(match)
    host_ids = list(services.order_by().values_list("host_id", flat=True).distinct())
    count = services.update(risk=_risk_of_service())
    refresh_hosts(Host.objects.filter(pk__in=host_ids))
    return count


def refresh_hosts(hosts: QuerySet) -> int:
    """Recount the port summary of ``hosts`` (open, unreviewed, violating, risk, last change).

    One grouped join rather than a subquery per host and column: a first
    import recounts 65,536 hosts at once, and a per-host lookup is at the
    mercy of the planner's estimates for a table that grew within this very
    transaction. PostgreSQL and SQLite (3.33+) both run it.
    """
    try:
        ids_sql, ids_params = hosts.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:  # e.g. pk__in=[]: nothing to recount
        return 0
    host_table, service_table = Host._meta.db_table, Service._meta.db_table
    # Table names come from the models and the id list is SQL the ORM compiled
    # with placeholders: nothing here is text from a user.
    sql = f"""
        UPDATE {host_table} SET open_count = c.open_count, unreviewed_count = c.unreviewed_count,
               violating_count = c.violating_count, risk = c.risk,
               last_change_at = COALESCE(c.last_change_at, {host_table}.first_seen)
        FROM (
            SELECT h.id AS host_id,
                   COUNT(s.id) FILTER (WHERE s.state = %s) AS open_count,
                   COUNT(s.id) FILTER (WHERE s.state = %s AND s.policy_status = %s) AS unreviewed_count,
                   COUNT(s.id) FILTER (WHERE s.state = %s AND s.policy_status = %s) AS violating_count,
                   COALESCE(MAX(s.risk) FILTER (WHERE s.state = %s), %s) AS risk,
                   MAX(s.last_changed) AS last_change_at
            FROM {host_table} h LEFT JOIN {service_table} s ON s.host_id = h.id
            WHERE h.id IN ({ids_sql})
            GROUP BY h.id
        ) AS c
        WHERE {host_table}.id = c.host_id
          -- an unchanged row is not rewritten (every column here is indexed,
          -- for the host list's sorts and the overview, so a rewrite is never
          -- a HOT update)
          AND ({host_table}.open_count, {host_table}.unreviewed_count, {host_table}.violating_count,
               {host_table}.risk, {host_table}.last_change_at)
              IS DISTINCT FROM (c.open_count, c.unreviewed_count, c.violating_count, c.risk,
                                COALESCE(c.last_change_at, {host_table}.first_seen))
    """  # noqa: S608
    opened = PortState.OPEN
    params = [opened, opened, PolicyStatus.UNREVIEWED, opened, PolicyStatus.REJECTED, opened, NO_RISK, *ids_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, [getattr(value, "value", value) for value in params])
        return cursor.rowcount


def governing(service: Service, now: datetime | None = None) -> list[PortRule]:
    """Every rule that applies to one port, the winner first (the port page lists them).

    The same order as ``matching_rules``, checked in Python: a port has few candidates.
    """
    now = now or timezone.now()
    host = service.host
    tag_ids = set(HostTag.objects.filter(host_id=host.pk).values_list("tag_id", flat=True))
    candidates = (
        PortRule.objects.filter(
            Q(protocol=service.protocol) | Q(protocol=ANY_PROTOCOL),
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            port_start__lte=service.port,
            port_end__gte=service.port,
        )
        .select_related("zone", "tag", "host__zone")
        .order_by("-specificity", "-decision", "-pk")
    )
    scope_matches = {
        RuleScope.GLOBAL: lambda rule: True,
        RuleScope.HOST: lambda rule: rule.host_id == host.pk,
        RuleScope.ZONE: lambda rule: rule.zone_id == host.zone_id,
        RuleScope.TAG: lambda rule: rule.tag_id in tag_ids,
        RuleScope.CIDR: lambda rule: in_cidr(host.address, rule.cidr),
    }
    return [rule for rule in candidates if scope_matches[rule.scope](rule)]
