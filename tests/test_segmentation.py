"""Segmentation rules held to what each vantage point sees (reach.segmentation).

Exposures are built through the real ingest (``tests.factories.scan``): the
zone's home vantage point's scans write the inventory, other vantage
points' scans their own view. On PostgreSQL the home's scans go through the
set-based SQL engine, on SQLite through the ORM engine; every test runs on both.

After each test, a reconciliation of every exposure records nothing: the
violations table was exact (``assert_exact``).
"""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alerts.models import AlertRule
from alerts.outbox import rule_condition
from inventory import policy
from inventory.choices import RuleScope
from inventory.models import Host, HostTag, Tag, Zone
from inventory.ports import PortSet
from reach import segmentation
from reach.models import SegmentationRule, SegmentationViolation, VantagePoint
from reach.segmentation_choices import SegmentationMode as Mode
from scans.choices import ChangeKind as K
from scans.models import Change
from tests.factories import scan

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

ALL_PORTS = {"tcp": PortSet.parse("1-65535")}
DB1, DB2, WEB = "198.18.40.1", "198.18.40.2", "198.18.40.10"
POSTGRES, MYSQL, REDIS = 5432, 3306, 6379


@pytest.fixture
def dc1():
    return Zone.objects.create(name="dc1")


@pytest.fixture
def home(dc1):
    return dc1.home_vantage


@pytest.fixture
def app():
    return VantagePoint.objects.create(name="dc1-app")


@pytest.fixture
def office():
    return VantagePoint.objects.create(name="office-lan")


@pytest.fixture(autouse=True)
def _exact():
    yield
    assert_exact()


def assert_exact():
    """A reconciliation of every exposure from every vantage point finds nothing to do."""
    with transaction.atomic():
        outcome = segmentation.reconcile(Q())
        assert (outcome.violated, outcome.kept) == (0, 0), "the violations table was not exact"
        transaction.set_rollback(True)


def look(vantage, hosts: dict, **kwargs):
    """A scan from ``vantage`` that probed every TCP port (those not listed were closed)."""
    return scan(vantage, hosts, probed=ALL_PORTS, **kwargs)


def make_rule(mode, vantages, *, ports=(1, 65535), protocol="tcp", scope=RuleScope.GLOBAL, **scope_fields):
    """A rule saved the way the pages save one: its reach re-evaluated at once."""
    start, end = (ports, ports) if isinstance(ports, int) else ports
    with transaction.atomic():
        rule = SegmentationRule.objects.create(
            mode=mode,
            scope=scope,
            protocol=protocol,
            port_start=start,
            port_end=end,
            justification="test",
            **scope_fields,
        )
        rule.vantage_points.set(vantages)
        segmentation.rule_changed(None, rule)
    return rule


def violations() -> set:
    return {
        (v.host.address, v.port, v.vantage.name, v.rule_id)
        for v in SegmentationViolation.objects.select_related("host", "vantage")
    }


def seg_changes(run=None) -> set:
    changes = Change.objects.filter(kind__in=[K.SEGMENTATION_VIOLATED, K.SEGMENTATION_KEPT])
    if run is not None:
        changes = changes.filter(run=run)
    return {(c.kind, c.host.address, c.port, c.vantage.name) for c in changes.select_related("host", "vantage")}


@pytest.fixture
def db_rules(dc1, home, app):
    """The issue's first example: PostgreSQL, MySQL and Redis of hosts tagged db, reachable only from dc1-app."""
    look(None, {DB1: {22: "open"}, DB2: {22: "open"}, WEB: {443: "open"}}, zone=dc1)
    tag = Tag.objects.create(name="db")
    for address in (DB1, DB2):
        HostTag.objects.create(host=Host.objects.get(address=address), tag=tag)
    return [make_rule(Mode.ONLY, [app], ports=port, scope=RuleScope.TAG, tag=tag) for port in (POSTGRES, MYSQL, REDIS)]


def test_a_db_port_open_from_office_lan_is_a_violation_and_its_end_is_kept(dc1, office, app, db_rules):
    postgres_rule = db_rules[0]
    run = look(office, {DB1: {POSTGRES: "open", 22: "open"}}, zone=dc1)

    assert violations() == {(DB1, POSTGRES, "office-lan", postgres_rule.pk)}
    assert seg_changes(run) == {(K.SEGMENTATION_VIOLATED, DB1, POSTGRES, "office-lan")}
    change = Change.objects.get(kind=K.SEGMENTATION_VIOLATED)
    expected = {"rule": str(postgres_rule.public_id), "mode": "only", "vantage": "office-lan"}
    assert change.after == expected and change.before is None
    # The built-in alert rule selects it.
    builtin = AlertRule.objects.get(name="Segmentation violated", built_in=True)
    assert Change.objects.filter(rule_condition(builtin)).get() == change

    # The firewall is restored: filtered from office-lan ends it.
    later = look(office, {DB1: {POSTGRES: "filtered", 22: "open"}}, zone=dc1)
    assert violations() == set()
    assert seg_changes(later) == {(K.SEGMENTATION_KEPT, DB1, POSTGRES, "office-lan")}
    kept = Change.objects.get(kind=K.SEGMENTATION_KEPT)
    assert kept.before == expected and kept.after is None
    assert not Change.objects.filter(rule_condition(builtin), pk=kept.pk).exists()


def test_reachable_from_the_listed_vantage_point_is_no_violation(dc1, app, db_rules):
    run = look(app, {DB1: {POSTGRES: "open", MYSQL: "open"}, DB2: {REDIS: "open"}}, zone=dc1)
    assert violations() == set() and seg_changes(run) == set()


def test_the_home_vantage_point_reaching_a_db_port_under_an_only_rule_is_a_violation(dc1, home, db_rules):
    run = look(None, {DB1: {22: "open", MYSQL: "open"}}, zone=dc1)
    assert violations() == {(DB1, MYSQL, "dc1", db_rules[1].pk)}
    assert seg_changes(run) == {(K.SEGMENTATION_VIOLATED, DB1, MYSQL, "dc1")}
    # Closed from home: kept.
    later = look(None, {DB1: {22: "open"}}, zone=dc1)
    assert seg_changes(later) == {(K.SEGMENTATION_KEPT, DB1, MYSQL, "dc1")} and violations() == set()


def test_a_host_outside_the_scope_is_not_governed(dc1, office, db_rules):
    look(office, {WEB: {POSTGRES: "open"}}, zone=dc1)
    assert violations() == set()


def test_nothing_in_dc1_from_office_lan_except_443(dc1, office, app):
    """The issue's second example, as a narrower allow rule: the most specific rule wins, per vantage point."""
    deny = make_rule(Mode.DENY, [office], ports=(1, 65535), protocol="any", scope=RuleScope.ZONE, zone=dc1)
    allow = make_rule(Mode.ALLOW, [office], ports=443, scope=RuleScope.ZONE, zone=dc1)
    look(office, {WEB: {443: "open", 80: "open"}}, zone=dc1)
    assert violations() == {(WEB, 80, "office-lan", deny.pk)}
    # The deny rule says nothing about dc1-app, and the allow rule nothing about it either.
    look(app, {WEB: {443: "open", 80: "open"}}, zone=dc1)
    assert violations() == {(WEB, 80, "office-lan", deny.pk)}
    # Without the exception 443 is a violation too: deleting it re-evaluates its reach.
    outcome = segmentation.delete_rule(allow)
    assert outcome.violated == 1
    assert violations() == {(WEB, 80, "office-lan", deny.pk), (WEB, 443, "office-lan", deny.pk)}


def test_nothing_in_dc1_from_office_lan_except_443_as_port_ranges(dc1, office):
    low = make_rule(Mode.DENY, [office], ports=(1, 442), scope=RuleScope.ZONE, zone=dc1)
    make_rule(Mode.DENY, [office], ports=(444, 65535), scope=RuleScope.ZONE, zone=dc1)
    look(office, {WEB: {443: "open", 80: "open"}}, zone=dc1)
    assert violations() == {(WEB, 80, "office-lan", low.pk)}


def test_most_specific_wins_host_over_network_over_tag_over_zone(dc1, office, app):
    look(None, {DB1: {22: "open"}}, zone=dc1)
    host = Host.objects.get(address=DB1)
    tag = Tag.objects.create(name="db")
    HostTag.objects.create(host=host, tag=tag)
    zone_rule = make_rule(Mode.ONLY, [app], ports=POSTGRES, scope=RuleScope.ZONE, zone=dc1)
    look(office, {DB1: {POSTGRES: "open"}}, zone=dc1)
    assert violations() == {(DB1, POSTGRES, "office-lan", zone_rule.pk)}
    # A tag rule letting office-lan in wins over the zone's.
    tag_rule = make_rule(Mode.ALLOW, [office], ports=POSTGRES, scope=RuleScope.TAG, tag=tag)
    assert violations() == set()
    # A network rule denying it again wins over the tag's; a longer prefix over a shorter.
    wide = make_rule(Mode.DENY, [office], ports=POSTGRES, scope=RuleScope.CIDR, cidr="198.18.0.0/15")
    assert violations() == {(DB1, POSTGRES, "office-lan", wide.pk)}
    narrow = make_rule(Mode.DENY, [office], ports=POSTGRES, scope=RuleScope.CIDR, cidr="198.18.40.0/24")
    assert violations() == {(DB1, POSTGRES, "office-lan", narrow.pk)}
    # The host's own rule wins over all of them.
    make_rule(Mode.ALLOW, [office], ports=POSTGRES, scope=RuleScope.HOST, host=host)
    assert violations() == set()
    assert tag_rule.pk and Change.objects.filter(kind=K.SEGMENTATION_KEPT).count() == 2


def test_a_narrower_port_range_wins_and_on_a_tie_the_rule_that_forbids(dc1, office):
    wide = make_rule(Mode.ALLOW, [office], ports=(1, 1024), scope=RuleScope.ZONE, zone=dc1)
    look(office, {WEB: {22: "open"}}, zone=dc1)
    assert violations() == set()
    narrow = make_rule(Mode.DENY, [office], ports=(20, 30), scope=RuleScope.ZONE, zone=dc1)
    assert violations() == {(WEB, 22, "office-lan", narrow.pk)}
    # An allow rule of the same scope and range ties with it: the deny wins.
    make_rule(Mode.ALLOW, [office], ports=(20, 30), scope=RuleScope.ZONE, zone=dc1)
    assert violations() == {(WEB, 22, "office-lan", narrow.pk)}
    assert wide.pk


def test_a_narrower_deny_rule_leaves_other_vantage_points_to_the_broader_only_rule(dc1, office, app):
    dmz = VantagePoint.objects.create(name="dmz")
    only = make_rule(Mode.ONLY, [app], ports=POSTGRES, scope=RuleScope.ZONE, zone=dc1)
    look(None, {DB1: {22: "open"}}, zone=dc1)
    make_rule(Mode.DENY, [office], ports=POSTGRES, scope=RuleScope.HOST, host=Host.objects.get(address=DB1))
    look(dmz, {DB1: {POSTGRES: "open"}}, zone=dc1)
    assert violations() == {(DB1, POSTGRES, "dmz", only.pk)}


def test_an_expired_rule_governs_nothing_and_its_expiry_is_applied_by_the_periodic_task(dc1, office):
    soon = timezone.now() + timedelta(hours=1)
    rule = make_rule(Mode.DENY, [office], ports=POSTGRES, scope=RuleScope.ZONE, zone=dc1)
    rule.expires_at = soon
    rule.save()
    look(office, {DB1: {POSTGRES: "open"}}, zone=dc1)
    assert violations() == {(DB1, POSTGRES, "office-lan", rule.pk)}
    assert segmentation.expire(soon - timedelta(minutes=1)) == 0
    assert segmentation.expire(soon + timedelta(seconds=1)) == 1
    assert violations() == set()
    kept = Change.objects.get(kind=K.SEGMENTATION_KEPT)
    assert kept.run is None and kept.vantage.name == "office-lan"
    # Applied once.
    assert segmentation.expire(soon + timedelta(minutes=5)) == 0
    passed(rule)


def passed(rule):
    """The clock reaches the rule's expiry (the tests above asked the expiry of the future)."""
    SegmentationRule.objects.filter(pk=rule.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def test_a_rule_saved_already_expired_governs_nothing(dc1, office):
    rule = make_rule(Mode.DENY, [office], ports=POSTGRES, scope=RuleScope.ZONE, zone=dc1)
    look(office, {DB1: {POSTGRES: "open"}}, zone=dc1)
    before = SegmentationRule.objects.get(pk=rule.pk)
    rule.expires_at = timezone.now() - timedelta(days=1)
    rule.save()
    assert rule.lapsed  # nothing left for the periodic task
    segmentation.rule_changed(before, rule)
    assert violations() == set()
    look(office, {DB1: {POSTGRES: "open", 22: "open"}}, zone=dc1)
    assert violations() == set()
    assert segmentation.expire() == 0


def test_beat_applies_expiries_every_minute(dc1, office, settings):
    from portwatch.celery import app
    from reach.tasks import settle_segmentation_rules

    entry = settings.CELERY_BEAT_SCHEDULE["reach-segmentation-rules"]
    assert entry["task"] in app.tasks and entry["schedule"] == 60
    rule = make_rule(Mode.DENY, [office], ports=POSTGRES, scope=RuleScope.ZONE, zone=dc1)
    look(office, {DB1: {POSTGRES: "open"}}, zone=dc1)
    # The clock reaches the rule's expiry (an update: a save would apply it itself).
    SegmentationRule.objects.filter(pk=rule.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    settle_segmentation_rules.apply()
    assert violations() == set() and SegmentationRule.objects.get(pk=rule.pk).lapsed


def test_expiry_of_an_exception_lets_the_broader_rule_forbid_again(dc1, office):
    deny = make_rule(Mode.DENY, [office], ports=(1, 65535), scope=RuleScope.ZONE, zone=dc1)
    allow = make_rule(Mode.ALLOW, [office], ports=443, scope=RuleScope.ZONE, zone=dc1)
    allow.expires_at = timezone.now() + timedelta(minutes=30)
    allow.save()
    look(office, {WEB: {443: "open"}}, zone=dc1)
    assert violations() == set()
    assert segmentation.expire(timezone.now() + timedelta(hours=1)) == 1
    assert violations() == {(WEB, 443, "office-lan", deny.pk)}
    passed(allow)


def test_editing_a_rule_re_evaluates_its_reach(dc1, office, app):
    rule = make_rule(Mode.DENY, [office], ports=POSTGRES, scope=RuleScope.ZONE, zone=dc1)
    look(office, {DB1: {POSTGRES: "open", REDIS: "open"}}, zone=dc1)
    look(app, {DB1: {POSTGRES: "open", REDIS: "open"}}, zone=dc1)
    assert violations() == {(DB1, POSTGRES, "office-lan", rule.pk)}

    first = Change.objects.get(kind=K.SEGMENTATION_VIOLATED).pk
    before = SegmentationRule.objects.get(pk=rule.pk)
    rule.port_start, rule.port_end = REDIS, REDIS
    rule.save()
    rule.vantage_points.set([office, app])
    outcome = segmentation.rule_changed(before, rule)
    assert (outcome.violated, outcome.kept) == (2, 1)
    assert violations() == {(DB1, REDIS, "office-lan", rule.pk), (DB1, REDIS, "dc1-app", rule.pk)}
    # Changes a rule made have no run and carry their vantage point.
    assert all(change.run is None for change in Change.objects.filter(kind__startswith="segmentation", pk__gt=first))
    assert seg_changes() == {
        (K.SEGMENTATION_VIOLATED, DB1, POSTGRES, "office-lan"),
        (K.SEGMENTATION_KEPT, DB1, POSTGRES, "office-lan"),
        (K.SEGMENTATION_VIOLATED, DB1, REDIS, "office-lan"),
        (K.SEGMENTATION_VIOLATED, DB1, REDIS, "dc1-app"),
    }


def test_a_rule_that_moves_a_violation_to_another_rule_records_nothing(dc1, office):
    wide = make_rule(Mode.DENY, [office], ports=(1, 65535), scope=RuleScope.ZONE, zone=dc1)
    look(office, {DB1: {POSTGRES: "open"}}, zone=dc1)
    narrow = make_rule(Mode.DENY, [office], ports=POSTGRES, scope=RuleScope.ZONE, zone=dc1)
    assert violations() == {(DB1, POSTGRES, "office-lan", narrow.pk)}
    segmentation.delete_rule(narrow)
    assert violations() == {(DB1, POSTGRES, "office-lan", wide.pk)}
    assert seg_changes() == {(K.SEGMENTATION_VIOLATED, DB1, POSTGRES, "office-lan")}


def test_a_stale_view_neither_begins_nor_ends_a_violation(dc1, office):
    rule = make_rule(Mode.DENY, [office], ports=POSTGRES, scope=RuleScope.ZONE, zone=dc1)
    look(office, {DB1: {POSTGRES: "open"}, DB2: {POSTGRES: "open"}}, zone=dc1)
    assert violations() == {(DB1, POSTGRES, "office-lan", rule.pk), (DB2, POSTGRES, "office-lan", rule.pk)}
    # DB1 falls silent from office-lan: its port is stale there, the violation stays.
    run = look(office, {DB2: {POSTGRES: "open"}}, silent=[DB1], zone=dc1)
    assert seg_changes(run) == set()
    assert (DB1, POSTGRES, "office-lan", rule.pk) in violations()
    # A stale open port begins no violation: a rule made while DB1 is silent says nothing about it.
    other = make_rule(Mode.DENY, [office], ports=POSTGRES, scope=RuleScope.HOST, host=Host.objects.get(address=DB2))
    assert violations() == {(DB1, POSTGRES, "office-lan", rule.pk), (DB2, POSTGRES, "office-lan", other.pk)}
    segmentation.delete_rule(rule)
    assert violations() == {(DB2, POSTGRES, "office-lan", other.pk)}
    look(office, {DB2: {POSTGRES: "open"}}, silent=[DB1], zone=dc1)
    new = make_rule(Mode.DENY, [office], ports=POSTGRES, scope=RuleScope.ZONE, zone=dc1)
    assert (DB1, POSTGRES, "office-lan", new.pk) not in violations()
    # It answers again with the port open: now it is seen, and it is a violation.
    back = look(office, {DB1: {POSTGRES: "open"}}, zone=dc1)
    assert seg_changes(back) == {(K.SEGMENTATION_VIOLATED, DB1, POSTGRES, "office-lan")}


def test_a_stale_home_view_keeps_its_violation(dc1, home):
    rule = make_rule(Mode.DENY, [home], ports=REDIS, scope=RuleScope.ZONE, zone=dc1)
    look(None, {DB1: {REDIS: "open"}}, zone=dc1)
    run = look(None, {}, silent=[DB1], zone=dc1)
    assert seg_changes(run) == set() and violations() == {(DB1, REDIS, "dc1", rule.pk)}


def test_a_redelivered_chunk_records_no_violation_twice(dc1, office):
    from scans.ingest.diff import Coverage
    from scans.ingest.entry import ingest
    from scans.nmap_xml import HostObservation, PortObservation
    from tests.factories import PROBED

    make_rule(Mode.DENY, [office], ports=POSTGRES, scope=RuleScope.ZONE, zone=dc1)
    run = look(office, {DB1: {POSTGRES: "open"}}, zone=dc1)
    chunk = run.chunks.get()
    observation = HostObservation(DB1, True, (), (PortObservation("tcp", POSTGRES, "open"),), ())
    with transaction.atomic():
        # The same chunk's result once more (what the ingest's lock normally prevents altogether).
        coverage = Coverage(frozenset([DB1]), PROBED, complete=True, observed_at=timezone.now())
        ingest(run=run, chunk=chunk, zone=dc1, coverage=coverage, observations=[observation], now=timezone.now())
    assert Change.objects.filter(kind=K.SEGMENTATION_VIOLATED).count() == 1


def test_changing_a_hosts_tags_re_evaluates_its_exposures(dc1, office, app):
    tag = Tag.objects.create(name="db")
    rule = make_rule(Mode.ONLY, [app], ports=POSTGRES, scope=RuleScope.TAG, tag=tag)
    look(office, {DB1: {POSTGRES: "open"}}, zone=dc1)
    assert violations() == set()
    host = Host.objects.get(address=DB1)
    with transaction.atomic():
        HostTag.objects.create(host=host, tag=tag)
        policy.evaluate_hosts(Host.objects.filter(pk=host.pk))
    assert violations() == {(DB1, POSTGRES, "office-lan", rule.pk)}
    with transaction.atomic():
        HostTag.objects.filter(host=host).delete()
        policy.evaluate_hosts(Host.objects.filter(pk=host.pk))
    assert violations() == set()


def test_a_host_discovered_from_elsewhere_gets_its_assignment_tags_before_it_is_judged(dc1, office, app):
    from inventory.models import AssignmentRule

    tag = Tag.objects.create(name="db")
    assignment = AssignmentRule.objects.create(cidr="198.18.40.0/24", zone=dc1)
    assignment.tags.set([tag])
    rule = make_rule(Mode.ONLY, [app], ports=POSTGRES, scope=RuleScope.TAG, tag=tag)
    look(office, {DB1: {POSTGRES: "open"}}, zone=dc1)
    assert violations() == {(DB1, POSTGRES, "office-lan", rule.pk)}


def test_violations_end_with_their_vantage_points_view_only(dc1, office, app):
    rule = make_rule(Mode.DENY, [office, app], ports=POSTGRES, scope=RuleScope.ZONE, zone=dc1)
    look(office, {DB1: {POSTGRES: "open"}}, zone=dc1)
    look(app, {DB1: {POSTGRES: "open"}}, zone=dc1)
    run = look(app, {DB1: {POSTGRES: "closed"}}, zone=dc1)
    assert seg_changes(run) == {(K.SEGMENTATION_KEPT, DB1, POSTGRES, "dc1-app")}
    assert violations() == {(DB1, POSTGRES, "office-lan", rule.pk)}


def test_the_set_based_verdict_is_the_python_one_on_random_rules(dc1, home, office, app):
    """Every exposure of a small random world: the SQL winner (one MAX over packed ranks) is
    ``governing()``'s winner, found in Python by sorting the rules that speak."""
    import random

    from reach.models import PortView

    randomly = random.Random(20261206)
    dc2 = Zone.objects.create(name="dc2")
    vantages = [home, office, app, dc2.home_vantage]
    tags = [Tag.objects.create(name=name) for name in ("db", "web")]
    now = timezone.now()
    hosts = []
    for n in range(6):
        zone = dc1 if n % 2 else dc2
        host = Host.objects.create(
            zone=zone, address=f"198.18.{46 + n % 2}.{n + 1}", first_seen=now, last_seen=now, last_scanned=now
        )
        for tag in tags:
            if randomly.random() < 0.5:
                HostTag.objects.create(host=host, tag=tag)
        hosts.append(host)
    ports = [22, 443, 5432, 6379]
    for host in hosts:
        for port in ports:
            for vantage in vantages:
                PortView.objects.create(
                    host=host, vantage=vantage, protocol="tcp", port=port, state="open",
                    first_seen=now, last_seen=now, last_changed=now,
                )  # fmt: skip
    for _ in range(40):
        scope = randomly.choice(list(RuleScope))
        fields = {
            RuleScope.GLOBAL: {},
            RuleScope.ZONE: {"zone": randomly.choice([dc1, dc2])},
            RuleScope.TAG: {"tag": randomly.choice(tags)},
            RuleScope.CIDR: {"cidr": randomly.choice(["198.18.46.0/24", "198.18.0.0/15", "198.18.47.4/32"])},
            RuleScope.HOST: {"host": randomly.choice(hosts)},
        }[scope]
        start = randomly.choice([1, 22, 443, 5000])
        end = randomly.choice([port for port in (22, 443, 5432, 6379, 65535) if port >= start])
        rule = SegmentationRule.objects.create(
            mode=randomly.choice(list(Mode)),
            scope=scope,
            protocol=randomly.choice(["tcp", "any", "udp"]),
            port_start=start,
            port_end=end,
            justification="random",
            expires_at=randomly.choice([None, None, now - timedelta(days=1), now + timedelta(days=1)]),
            **fields,
        )
        rule.vantage_points.set(randomly.sample(vantages, randomly.randint(1, 3)))
    judged = PortView.objects.annotate(rule_verdict=segmentation.verdict(now, vantage="vantage_id")).select_related(
        "host", "vantage"
    )
    outcomes = Counter()
    for exposure in judged:
        speaking = segmentation.governing(exposure.host, "tcp", exposure.port, exposure.vantage, now)
        if not speaking:
            expected = None
        else:
            winner = speaking[0]
            listed = exposure.vantage in winner.vantage_points.all()
            forbids = winner.mode == Mode.DENY or (winner.mode == Mode.ONLY and not listed)
            expected = winner.pk if forbids else 0
        assert exposure.rule_verdict == expected, (exposure, speaking)
        outcomes["none" if expected is None else "forbidden" if expected else "allowed"] += 1
    # The world is varied enough to mean something.
    assert min(outcomes.values()) >= 10, outcomes
    # And the table follows: one violation per forbidden exposure.
    with transaction.atomic():
        assert segmentation.reconcile(Q()).violated == outcomes["forbidden"] == SegmentationViolation.objects.count()
