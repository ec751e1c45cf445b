"""Review decisions through the UI: bulk, scopes, conflicts, and what the audit log keeps."""

import html
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

from inventory import policy, review
from inventory.choices import Decision, PolicyStatus, RuleScope
from inventory.models import AuditEntry, Host, HostTag, PortRule, Service, Tag
from portwatch.roles import Role
from tests.conftest import make_user
from tests.factories import observe

A, B, C = "127.62.0.1", "127.62.0.2", "127.63.0.1"


def ports(*pairs):
    return [Service.objects.get(host__address=address, port=port) for address, port in pairs]


def tokens(*services):
    return [review.token_for(service) for service in services]


def decide_post(client, services, **fields):
    data = {
        "token": tokens(*services),
        "decision": Decision.APPROVED,
        "scope": RuleScope.HOST,
        "justification": "needed by the web tier",
        "next": reverse("review-queue"),
        **fields,
    }
    return html.unescape(client.post(reverse("review-decide"), data, follow=True).content.decode())


@pytest.fixture
def as_reviewer(client, reviewer):
    client.force_login(reviewer)
    return client


@pytest.mark.django_db
def test_the_queue_lists_violations_first_then_by_risk(as_reviewer):
    observe({A: [22, 6379, 8080]})
    PortRule.objects.create(
        scope="global", protocol="tcp", port_start=8080, port_end=8080, decision="rejected", justification="no"
    )
    policy.evaluate(Service.objects.all())
    response = as_reviewer.get(reverse("review-queue"))
    rows = [service.port for service in response.context["page"].object_list]
    assert rows == [8080, 6379, 22]  # the violation, then Redis (high risk), then ssh


@pytest.mark.django_db
def test_bulk_approval_on_this_host_writes_one_rule_per_port_and_audits_each(as_reviewer):
    observe({A: [22, 80], B: [22]})
    chosen = ports((A, 22), (A, 80), (B, 22))
    response = decide_post(as_reviewer, chosen, owner="web-team", ticket="https://tickets.example/T-1")
    assert "Approved 3 ports" in response
    assert PortRule.objects.filter(scope=RuleScope.HOST, owner="web-team").count() == 3
    assert {s.policy_status for s in ports((A, 22), (A, 80), (B, 22))} == {PolicyStatus.APPROVED}
    assert AuditEntry.objects.filter(action="review.approve").count() == 3
    assert AuditEntry.objects.filter(action="rule.create").count() == 3
    assert Host.objects.get(address=A).unreviewed_count == 0


@pytest.mark.django_db
def test_rejecting_for_a_tag_needs_every_host_to_carry_it(as_reviewer):
    observe({A: [23], C: [23]})
    legacy = Tag.objects.create(name="legacy")
    HostTag.objects.create(host=Host.objects.get(address=A), tag=legacy)
    chosen = ports((A, 23), (C, 23))
    response = decide_post(as_reviewer, chosen, decision=Decision.REJECTED, scope=RuleScope.TAG, tag="legacy")
    assert f"Not every chosen port's host has the tag legacy: {C}" in response
    assert not PortRule.objects.exists()
    response = decide_post(as_reviewer, chosen[:1], decision=Decision.REJECTED, scope=RuleScope.TAG, tag="legacy")
    assert PortRule.objects.get().tag == legacy
    assert Host.objects.get(address=A).violating_count == 1


@pytest.mark.django_db
@pytest.mark.sqlite  # a decision serialised by SQLite's write lock, its network by pw_in_cidr
def test_a_network_scope_rule_covers_other_hosts_in_it(as_reviewer):
    observe({A: [22], B: [22], C: [22]})
    decide_post(as_reviewer, ports((A, 22)), scope=RuleScope.CIDR, cidr="127.62.0.0/24")
    assert PortRule.objects.get().cidr == "127.62.0.0/24"
    statuses = {s.host.address: s.policy_status for s in Service.objects.select_related("host")}
    assert statuses == {A: "approved", B: "approved", C: "unreviewed"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"justification": "  "}, "justification is required"),
        ({"scope": RuleScope.CIDR, "cidr": "not-a-network"}, "is not a network"),
        ({"scope": RuleScope.TAG}, "Choose the tag"),
        ({"expires_at": "2001-01-01T00:00"}, "must be in the future"),
        ({"token": ["x:y"]}, "selection is malformed"),
        ({"token": []}, "Choose at least one port"),
        ({"decision": "maybe"}, "Select a valid choice"),
    ],
)
def test_bad_decisions_are_refused_with_a_clear_message_and_write_nothing(as_reviewer, fields, message):
    observe({A: [22]})
    before = AuditEntry.objects.count()
    response = decide_post(as_reviewer, ports((A, 22)), **fields)
    assert message in response
    assert not PortRule.objects.exists()
    assert AuditEntry.objects.count() == before


@pytest.mark.django_db
def test_a_stale_page_gets_a_conflict_message_and_both_attempts_are_audited(client):
    observe({A: [22]})
    alice, bob = make_user("alice", Role.REVIEWER), make_user("bob", Role.REVIEWER)
    stale = tokens(*ports((A, 22)))  # both loaded the page now
    review.decide(alice, stale, review.DecisionRequest(Decision.APPROVED, RuleScope.HOST, "alice says yes"))
    client.force_login(bob)
    response = client.post(
        reverse("review-decide"),
        {"token": stale, "decision": "rejected", "scope": "host", "justification": "bob says no"},
        follow=True,
    )
    text = html.unescape(response.content.decode())
    assert "Nothing was applied: another reviewer decided first" in text
    assert "alice approved it" in text
    assert ports((A, 22))[0].policy_status == PolicyStatus.APPROVED
    assert PortRule.objects.count() == 1
    actions = list(AuditEntry.objects.order_by("seq").values_list("actor_name", "action"))
    assert ("alice", "review.approve") in actions and ("bob", "review.conflict") in actions


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_at_the_same_moment_exactly_one_wins():
    observe({A: [22, 80]})
    seen = tokens(*ports((A, 22), (A, 80)))
    people = [make_user(name, Role.REVIEWER) for name in ("carol", "dave")]
    barrier = threading.Barrier(2)
    outcomes = {}

    def act(person, decision):
        try:
            barrier.wait()
            review.decide(person, seen, review.DecisionRequest(decision, RuleScope.HOST, f"{person} decided"))
            outcomes[person.username] = "applied"
        except review.ReviewConflict as conflict:
            outcomes[person.username] = f"conflict: {conflict}"
        finally:
            connection.close()

    threads = [
        threading.Thread(target=act, args=(people[0], Decision.APPROVED)),
        threading.Thread(target=act, args=(people[1], Decision.REJECTED)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(value.split(":")[0] for value in outcomes.values()) == ["applied", "conflict"], outcomes
    winner = next(name for name, value in outcomes.items() if value == "applied")
    loser = next(name for name in outcomes if name != winner)
    assert {rule.created_by.username for rule in PortRule.objects.all()} == {winner}
    assert AuditEntry.objects.filter(actor_name=loser, action="review.conflict").count() == 2
    assert AuditEntry.objects.filter(actor_name=winner, action__startswith="review.").count() == 2
    expected = PolicyStatus.APPROVED if winner == "carol" else PolicyStatus.REJECTED
    assert {s.policy_status for s in Service.objects.all()} == {expected}


@pytest.mark.django_db
def test_a_broad_decision_under_a_narrower_rule_warns_that_it_did_not_take(as_reviewer):
    observe({A: [22]})
    host = Host.objects.get(address=A)
    rule = PortRule.objects.create(
        scope="host", host=host, protocol="tcp", port_start=22, port_end=22, decision="approved", justification="x"
    )
    policy.rule_changed(rule)
    response = decide_post(as_reviewer, ports((A, 22)), decision=Decision.REJECTED, scope=RuleScope.GLOBAL)
    assert "A more specific rule still governs" in response


@pytest.mark.django_db
def test_viewers_see_the_queue_but_cannot_decide(client, viewer):
    observe({A: [22]})
    client.force_login(viewer)
    page = client.get(reverse("review-queue")).content.decode()
    assert 'name="token"' not in page and "Decide on the ticked ports" not in page
    response = client.post(
        reverse("review-decide"),
        {"token": tokens(*ports((A, 22))), "decision": "approved", "scope": "host", "justification": "x"},
    )
    assert response.status_code == 403
    assert not PortRule.objects.exists()


def test_parse_tokens_rejects_garbage():
    with pytest.raises(ValidationError):
        review.parse_tokens(["1:2", "abc"])
    assert review.parse_tokens(["1:0", "2:7"]) == {1: None, 2: 7}
