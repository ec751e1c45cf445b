"""Review decisions: approve or reject ports, one or many, under a chosen scope.

A decision is a port rule (``PortRule``) per distinct port, in the scope the
reviewer chose: this host, the hosts' zone, a tag, a network, or everywhere.

Two reviewers may look at the same port at the same moment. The review
form carries, for each port, the rule that governed it when the page was
drawn (a "token"); a decision is applied only if every port is still
governed by that rule. Decisions are serialised (one at a time, see
``_serialise``), so of two simultaneous decisions on a port exactly one is
applied and the other finds the port changed: it raises ``ReviewConflict``,
writes nothing but its own audit entry, and tells the reviewer who decided
first.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from inventory import audit, policy
from inventory.choices import Decision, RuleScope
from inventory.lookups import in_cidr
from inventory.models import HostTag, PortRule, Service, Tag

# Scopes a reviewer picks from, in the order the form offers them.
REVIEW_SCOPES = [RuleScope.HOST, RuleScope.TAG, RuleScope.CIDR, RuleScope.ZONE, RuleScope.GLOBAL]
# pg_advisory_xact_lock key: "PWreview".
_LOCK_KEY = 0x5057_7265_7669_6577
MAX_PORTS_PER_DECISION = 5000


def token_for(service: Service) -> str:
    """What the review form sends back for a port: its id and the rule governing it when shown."""
    return f"{service.pk}:{service.policy_rule_id or 0}"


def parse_tokens(tokens: Iterable[str]) -> dict[int, int | None]:
    expected: dict[int, int | None] = {}
    for token in tokens:
        service_id, _, rule_id = str(token).partition(":")
        if not service_id.isdigit() or not rule_id.isdigit():
            raise ValidationError("The selection is malformed; reload the page and choose the ports again.")
        expected[int(service_id)] = int(rule_id) or None
    if not expected:
        raise ValidationError("Choose at least one port.")
    if len(expected) > MAX_PORTS_PER_DECISION:
        raise ValidationError(f"Decide on at most {MAX_PORTS_PER_DECISION} ports at once.")
    return expected


@dataclass(frozen=True)
class Conflict:
    service: Service
    rule: PortRule | None

    def __str__(self):
        where = f"{self.service.port}/{self.service.protocol} on {self.service.host.address}"
        if self.rule is None:
            return f"{where}: the rule you saw was removed or expired"
        who = self.rule.created_by.get_username() if self.rule.created_by else "someone"
        return f"{where}: {who} {self.rule.get_decision_display()} it ({self.rule.scope_label}) while you were deciding"


class ReviewConflict(Exception):
    def __init__(self, conflicts: list[Conflict]):
        self.conflicts = conflicts
        super().__init__("; ".join(str(conflict) for conflict in conflicts))


@dataclass(frozen=True)
class DecisionRequest:
    decision: str
    scope: str
    justification: str
    owner: str = ""
    ticket: str = ""
    expires_at: datetime | None = None
    tag: Tag | None = None
    cidr: str = ""


@dataclass(frozen=True)
class Outcome:
    rules: list[PortRule]
    # Ports a more specific rule still governs (a tag-wide approval does not
    # override a host's own rejection): the reviewer is told.
    overridden: list[Service]


def decide(actor, tokens: Iterable[str], request: DecisionRequest) -> Outcome:
    """Apply one decision to the ports behind ``tokens``; return the rules written.

    Raises ValidationError (nothing written) when the scope does not fit the
    ports, and ReviewConflict (nothing written but the audit of the attempt)
    when a port changed since the reviewer saw it.
    """
    expected = parse_tokens(tokens)
    if request.decision not in Decision.values or request.scope not in REVIEW_SCOPES:
        raise ValidationError("Choose approve or reject, and a scope.")
    if not request.justification.strip():
        raise ValidationError("A justification is required.")
    try:
        with transaction.atomic():
            _serialise()
            services = list(
                Service.objects.select_for_update(of=("self",))
                .filter(pk__in=expected)
                .select_related("host__zone")
                .order_by("pk")
            )
            if len(services) != len(expected):
                raise ValidationError("Some of the chosen ports no longer exist; reload the page.")
            conflicts = [s for s in services if s.policy_rule_id != expected[s.pk]]
            if conflicts:
                rules = PortRule.objects.select_related("created_by", "zone", "tag", "host__zone").in_bulk(
                    {s.policy_rule_id for s in conflicts if s.policy_rule_id}
                )
                raise ReviewConflict([Conflict(s, rules.get(s.policy_rule_id)) for s in conflicts])
            _check_scope(services, request)
            rules = _write_rules(actor, services, request)
            before = {s.pk: (s.policy_status, s.policy_rule_id) for s in services}
            policy.rule_changed(*rules)
            overridden = _audit_decisions(actor, services, before, request, {rule.pk for rule in rules})
    except ReviewConflict as conflict:
        with transaction.atomic():
            for item in conflict.conflicts:
                audit.record(
                    actor,
                    "review.conflict",
                    item.service,
                    summary=f"Tried to {_verb(request.decision)} it; not applied: {item}.",
                    before={"expected_rule": expected[item.service.pk]},
                    after={"current_rule": item.service.policy_rule_id},
                )
        raise
    return Outcome(rules, overridden)


def _serialise() -> None:
    """One decision at a time: a decision rewrites many ports (a tag, a network),
    and two overlapping ones could otherwise deadlock or both succeed."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
    # SQLite: a write transaction already excludes every other writer.


def _check_scope(services: list[Service], request: DecisionRequest) -> None:
    if request.scope == RuleScope.TAG:
        if request.tag is None:
            raise ValidationError("Choose the tag the decision applies to.")
        tagged = set(
            HostTag.objects.filter(tag=request.tag, host_id__in={s.host_id for s in services}).values_list(
                "host_id", flat=True
            )
        )
        outside = sorted({s.host.address for s in services if s.host_id not in tagged})
        if outside:
            raise ValidationError(
                f"Not every chosen port's host has the tag {request.tag}: {', '.join(outside[:5])}"
                + (" and more" if len(outside) > 5 else "")
                + "."
            )
    elif request.scope == RuleScope.CIDR:
        if not request.cidr:
            raise ValidationError("Give the network (CIDR) the decision applies to.")
        outside = sorted({s.host.address for s in services if not in_cidr(s.host.address, request.cidr)})
        if outside:
            raise ValidationError(
                f"Not every chosen port's host is within {request.cidr}: {', '.join(outside[:5])}"
                + (" and more" if len(outside) > 5 else "")
                + "."
            )


def _write_rules(actor, services: list[Service], request: DecisionRequest) -> list[PortRule]:
    """One rule per distinct port within the scope (a host scope: per host and port)."""
    wanted: dict[tuple, PortRule] = {}
    for service in services:
        fields = {}
        if request.scope == RuleScope.HOST:
            fields = {"host": service.host}
        elif request.scope == RuleScope.ZONE:
            fields = {"zone": service.host.zone}
        elif request.scope == RuleScope.TAG:
            fields = {"tag": request.tag}
        elif request.scope == RuleScope.CIDR:
            fields = {"cidr": request.cidr}
        where = service.host_id if request.scope == RuleScope.HOST else service.host.zone_id
        key = (where if request.scope in (RuleScope.HOST, RuleScope.ZONE) else None, service.protocol, service.port)
        if key in wanted:
            continue
        wanted[key] = PortRule(
            scope=request.scope,
            protocol=service.protocol,
            port_start=service.port,
            port_end=service.port,
            decision=request.decision,
            justification=request.justification.strip(),
            owner=request.owner,
            ticket=request.ticket,
            expires_at=request.expires_at,
            created_by=actor if getattr(actor, "pk", None) else None,
            **fields,
        )
    rules = list(wanted.values())
    for rule in rules:
        rule.full_clean(exclude=["specificity", "public_id"])
        rule.save()
        audit.record(actor, "rule.create", rule, after=audit.snapshot(rule))
    return rules


def _audit_decisions(actor, services, before: dict, request: DecisionRequest, rule_ids: set) -> list[Service]:
    fresh = Service.objects.in_bulk([s.pk for s in services])
    overridden = [service for service in services if fresh[service.pk].policy_rule_id not in rule_ids]
    for service in services:
        now = fresh[service.pk]
        old_status, old_rule = before[service.pk]
        audit.record(
            actor,
            f"review.{'approve' if request.decision == Decision.APPROVED else 'reject'}",
            service,
            summary=request.justification.strip(),
            before={"status": old_status, "rule": old_rule},
            after={"status": now.policy_status, "rule": now.policy_rule_id, "scope": request.scope},
        )
    return overridden


def _verb(decision: str) -> str:
    return "approve" if decision == Decision.APPROVED else "reject"
