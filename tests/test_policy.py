"""The policy: which rule governs each port, and what that makes the port."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from inventory import assignment, policy
from inventory.choices import NO_RISK, Decision, PolicyStatus, RuleScope, Severity
from inventory.models import AssignmentRule, Host, HostTag, PortRule, Service, Tag, Zone, specificity_of
from scans.tasks import tick
from tests.factories import observe

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

A, B, C = "127.60.0.1", "127.60.0.2", "127.61.0.1"


def rule(scope=RuleScope.GLOBAL, port=22, decision=Decision.APPROVED, **fields) -> PortRule:
    fields.setdefault("port_start", port)
    fields.setdefault("port_end", port)
    made = PortRule(scope=scope, decision=decision, justification="test", protocol="tcp", **fields)
    made.full_clean()
    made.save()
    policy.rule_changed(made)
    return made


def service(address, port=22) -> Service:
    return Service.objects.select_related("host", "policy_rule").get(host__address=address, port=port)


def rows_updated_in_this_transaction() -> int | None:
    """PostgreSQL's count of the service rows this transaction updated; SQLite keeps none (None)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_get_xact_tuples_updated('inventory_service'::regclass)")
        return cursor.fetchone()[0]


def status(address, port=22) -> str:
    return service(address, port).policy_status


def test_a_new_open_port_is_unreviewed_and_counted_on_its_host():
    observe({A: [22, 80]})
    assert status(A, 22) == status(A, 80) == PolicyStatus.UNREVIEWED
    host = Host.objects.get(address=A)
    assert (host.open_count, host.unreviewed_count, host.violating_count) == (2, 2, 0)
    assert host.last_change_at is not None


def test_a_port_that_opens_under_an_existing_rule_takes_its_decision_at_once():
    rejected = rule(port=23, decision=Decision.REJECTED)
    observe({A: [22, 23]})
    assert status(A, 23) == PolicyStatus.REJECTED
    assert service(A, 23).policy_rule == rejected
    host = Host.objects.get(address=A)
    assert (host.unreviewed_count, host.violating_count) == (1, 1)


def test_ports_opening_on_a_known_host_are_decided_as_they_are_written():
    # On a known host the SQL engine decides rule, status and risk of a new
    # port before inserting it (scans.ingest.postgres.apply.decide_staged); the same
    # answers as evaluating it afterwards, tags and networks included.
    observe({A: [22]})
    pci = Tag.objects.create(name="pci")
    HostTag.objects.create(host=Host.objects.get(address=A), tag=pci)
    by_tag = rule(RuleScope.TAG, port=23, tag=pci, decision=Decision.REJECTED)
    rule(RuleScope.GLOBAL, port=23, decision=Decision.APPROVED)
    by_network = rule(RuleScope.CIDR, port=24, cidr="127.60.0.0/16", decision=Decision.APPROVED)
    updated = rows_updated_in_this_transaction()
    observe({A: [22, 23, 24, 6379]})
    assert rows_updated_in_this_transaction() == updated  # written once, not inserted then evaluated
    assert (status(A, 23), service(A, 23).policy_rule) == (PolicyStatus.REJECTED, by_tag)
    assert (status(A, 24), service(A, 24).policy_rule) == (PolicyStatus.APPROVED, by_network)
    assert (status(A, 6379), service(A, 6379).policy_rule) == (PolicyStatus.UNREVIEWED, None)
    assert service(A, 6379).risk >= Severity.HIGH
    assert not Service.objects.filter(policy_status__isnull=True).exists()
    host = Host.objects.get(address=A)
    assert (host.open_count, host.unreviewed_count, host.violating_count) == (4, 2, 1)
    assert host.risk == max(service(A, port).risk for port in (22, 23, 24, 6379))


def test_the_most_specific_scope_wins():
    zone = Zone.default()
    observe({A: [22], B: [22], C: [22]})
    tag = Tag.objects.create(name="bastion")
    HostTag.objects.create(host=Host.objects.get(address=B), tag=tag)
    rule(RuleScope.GLOBAL, decision=Decision.REJECTED)
    rule(RuleScope.ZONE, zone=zone, decision=Decision.APPROVED)
    assert {status(A), status(B), status(C)} == {PolicyStatus.APPROVED}
    rule(RuleScope.TAG, tag=tag, decision=Decision.REJECTED)
    policy.evaluate_hosts(Host.objects.all())
    assert (status(A), status(B)) == (PolicyStatus.APPROVED, PolicyStatus.REJECTED)
    rule(RuleScope.CIDR, cidr="127.60.0.0/16", decision=Decision.REJECTED)
    assert (status(A), status(B), status(C)) == (PolicyStatus.REJECTED, PolicyStatus.REJECTED, PolicyStatus.APPROVED)
    # A longer prefix beats a shorter one, a single host beats any network.
    rule(RuleScope.CIDR, cidr="127.60.0.2/32", decision=Decision.APPROVED)
    assert status(B) == PolicyStatus.APPROVED
    host_rule = rule(RuleScope.HOST, host=Host.objects.get(address=B), decision=Decision.REJECTED)
    assert service(B).policy_rule == host_rule


def test_a_narrower_port_range_wins_and_rejection_wins_a_tie():
    observe({A: [22, 8080]})
    rule(port=None, port_start=1, port_end=1024, decision=Decision.REJECTED)
    rule(port=22, decision=Decision.APPROVED)
    assert (status(A, 22), status(A, 8080)) == (PolicyStatus.APPROVED, PolicyStatus.UNREVIEWED)
    rule(port=22, decision=Decision.REJECTED)
    assert status(A, 22) == PolicyStatus.REJECTED


def test_a_rule_for_any_protocol_matches_tcp():
    observe({A: [53]})
    made = PortRule(
        scope=RuleScope.GLOBAL, protocol="any", port_start=53, port_end=53, decision="approved", justification="dns"
    )
    made.save()
    policy.rule_changed(made)
    assert status(A, 53) == PolicyStatus.APPROVED


def test_an_expired_approval_returns_to_unreviewed_or_the_next_rule():
    observe({A: [22], B: [22]})
    rule(RuleScope.CIDR, cidr="127.60.0.2/32", decision=Decision.REJECTED, port=22)
    soon = timezone.now() + timedelta(hours=1)
    broad = rule(RuleScope.GLOBAL, decision=Decision.APPROVED, expires_at=soon)
    narrow = rule(RuleScope.HOST, host=Host.objects.get(address=B), decision=Decision.APPROVED, expires_at=soon)
    assert (status(A), status(B)) == (PolicyStatus.APPROVED, PolicyStatus.APPROVED)
    PortRule.objects.filter(pk__in=[broad.pk, narrow.pk]).update(expires_at=timezone.now() - timedelta(seconds=1))
    tick()  # the scheduler's tick expires rules
    assert status(A) == PolicyStatus.UNREVIEWED
    assert status(B) == PolicyStatus.REJECTED  # the next most specific rule governs again
    assert Host.objects.get(address=B).violating_count == 1


def test_deleting_a_rule_lets_go_of_its_ports():
    observe({A: [22]})
    made = rule(decision=Decision.REJECTED)
    assert Host.objects.get(address=A).violating_count == 1
    snapshot = PortRule.objects.get(pk=made.pk)
    made.delete()
    policy.rule_changed(snapshot)
    assert status(A) == PolicyStatus.UNREVIEWED
    assert Host.objects.get(address=A).violating_count == 0


def test_narrowing_a_rule_releases_the_ports_it_no_longer_covers():
    observe({A: [22], C: [22]})
    made = rule(RuleScope.CIDR, cidr="127.0.0.0/8", decision=Decision.APPROVED)
    before = PortRule.objects.get(pk=made.pk)
    made.cidr = "127.61.0.0/16"
    made.save()
    policy.rule_changed(before, made)
    assert (status(A), status(C)) == (PolicyStatus.UNREVIEWED, PolicyStatus.APPROVED)


def test_a_closed_port_under_a_rejection_is_no_longer_a_violation():
    observe({A: [22, 80]})
    rule(decision=Decision.REJECTED)
    assert Host.objects.get(address=A).violating_count == 1
    observe({A: [80]})
    host = Host.objects.get(address=A)
    assert (host.open_count, host.violating_count) == (1, 0)


def test_risk_comes_from_the_risk_table_by_port_or_by_service_name():
    observe({A: [6379, (7000, "redis"), 8000]})
    assert service(A, 6379).risk >= Severity.HIGH
    assert service(A, 7000).risk == service(A, 6379).risk  # Redis on another port is still Redis
    assert service(A, 8000).risk == NO_RISK and service(A, 8000).risk_label == ""
    assert Host.objects.get(address=A).risk == service(A, 6379).risk


def test_assignment_rules_tag_hosts_and_tag_rules_follow():
    observe({A: [22], C: [22]})
    pci = Tag.objects.create(name="pci")
    rule(RuleScope.TAG, tag=pci, decision=Decision.REJECTED)
    assignment_rule = AssignmentRule.objects.create(cidr="127.60.0.0/16", owner="payments")
    assignment_rule.tags.add(pci)
    assignment.rule_changed(None, assignment_rule)
    host = Host.objects.get(address=A)
    assert list(host.tags.all()) == [pci] and host.owner == "payments"
    assert (status(A), status(C)) == (PolicyStatus.REJECTED, PolicyStatus.UNREVIEWED)
    # A host discovered later inside the network gets them too, before its ports are judged.
    observe({B: [22]})
    assert status(B) == PolicyStatus.REJECTED
    assert Host.objects.get(address=B).owner == "payments"
    # A person's owner is never overwritten, and removing the rule takes back only what it gave.
    Host.objects.filter(address=B).update(owner="alice", owner_rule=None)
    assignment.take_back(assignment_rule)
    assignment_rule.delete()
    policy.evaluate_hosts(Host.objects.all())
    assert not HostTag.objects.exists()
    assert Host.objects.get(address=A).owner == "" and Host.objects.get(address=B).owner == "alice"
    assert status(A) == PolicyStatus.UNREVIEWED


def test_the_narrowest_assignment_rule_gives_the_owner():
    observe({A: [22]})
    for cidr, owner in (("127.60.0.1/32", "narrow"), ("127.0.0.0/8", "wide")):
        made = AssignmentRule.objects.create(cidr=cidr, owner=owner)
        assignment.rule_changed(None, made)
    assert Host.objects.get(address=A).owner == "narrow"


def test_specificity_orders_scopes_then_prefix_then_ports():
    def spec(**fields):
        made = PortRule(protocol="tcp", decision="approved", justification="x", **fields)
        return specificity_of(made)

    one = {"port_start": 22, "port_end": 22}
    wide = {"port_start": 1, "port_end": 65535}
    assert spec(scope="global", **one) < spec(scope="zone", **wide) < spec(scope="tag", **wide)
    assert spec(scope="tag", **one) < spec(scope="cidr", cidr="0.0.0.0/0", **wide)
    assert spec(scope="cidr", cidr="127.0.0.0/8", **one) < spec(scope="cidr", cidr="127.1.0.0/16", **wide)
    assert spec(scope="cidr", cidr="::/0", **one) < spec(scope="cidr", cidr="127.0.0.0/8", **one)
    assert spec(scope="cidr", cidr="127.0.0.1/32", **one) < spec(scope="host", **wide)
    assert spec(scope="zone", **wide) < spec(scope="zone", **one)


def test_a_service_that_changes_name_is_rerated():
    observe({A: [(7000, "http")]})
    assert service(A, 7000).risk == NO_RISK
    observe({A: [(7000, "redis")]})
    assert service(A, 7000).name == "redis"
    assert service(A, 7000).risk >= Severity.HIGH
    assert Host.objects.get(address=A).risk == service(A, 7000).risk
