"""Kept counts (tallies): every figure the overview and /metrics show equals a full recount.

The figures are kept by database triggers (``tallies``); these tests hold them
to the aggregate queries the overview used to run over the whole inventory
(``recount`` below), and every kept row to the triggers' own recount
(``tallies.maintenance.differences``), after ingests by both engines (real
scan files included), reviews, rules created, edited, deleted and expired,
zone changes, host deletions, and with changes, ports and scans aging across
every edge the overview reads (24 h, 7 d, 30 d, a zone's schedule). A rollback
counts nothing; on PostgreSQL two ingests committing at once both count, and
a compaction never loses the deltas of a transaction still running.
"""

import importlib
import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import close_old_connections, connection, transaction
from django.db.models import Count, F, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from inventory import policy, review
from inventory.choices import Decision, HostStatus, PolicyStatus, PortState, RuleScope
from inventory.models import Host, PortRule, ProbedPortSet, Service, Zone
from inventory.ports import PortSet
from inventory.snapshots import inventory_counts
from portwatch import dashboard
from scans import freshness
from scans.choices import ChangeKind, ChunkStatus, RunStatus, ScheduleKind, Trigger
from scans.ingest.diff import Coverage
from scans.ingest.entry import ingest
from scans.ingest.imports import import_scan_file
from scans.models import Change, ScanChunk, ScanProfile, ScanRun, ScanTarget
from scans.nmap_xml import HostObservation, NmapXmlError, PortObservation
from tallies import maintenance
from tallies.choices import CHANGES_KEPT, Figure
from tallies.models import Tally, TallyDelta
from tallies.read import hour_of
from tests.factories import PROBED

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

POSTGRESQL_ONLY = pytest.mark.postgresql("the set-based SQL engine and concurrent writers are PostgreSQL's")
ENGINES = (pytest.param("sql", marks=POSTGRESQL_ONLY), "orm")
SCENARIOS = Path(__file__).parent / "fixtures" / "nmap" / "semantics"


@pytest.fixture(params=ENGINES)
def engine(request, settings):
    settings.INGEST_SQL_ENGINE = request.param == "sql"
    return request.param


# --- the figures two ways ---------------------------------------------------------------


def recount(now) -> dict:
    """The figures as the overview computed them before they were kept: aggregates over the inventory."""
    counts = Host.objects.aggregate(hosts=Count("id"), unreachable=Count("id", filter=Q(status=HostStatus.UNREACHABLE)))
    open_ports = Service.objects.filter(state=PortState.OPEN)
    counts.update(
        open_ports.aggregate(
            open_ports=Count("id"),
            unreviewed=Count("id", filter=Q(policy_status=PolicyStatus.UNREVIEWED)),
            violating=Count("id", filter=Q(policy_status=PolicyStatus.REJECTED)),
        )
    )
    # What the overview summed before: the hosts' own summaries agree.
    summaries = Host.objects.aggregate(
        open_ports=Coalesce(Sum("open_count"), 0),
        unreviewed=Coalesce(Sum("unreviewed_count"), 0),
        violating=Coalesce(Sum("violating_count"), 0),
    )
    assert summaries == {key: counts[key] for key in summaries}
    waiting = open_ports.filter(policy_status=PolicyStatus.UNREVIEWED)
    backlog = []
    for _label, newer, older in dashboard.BACKLOG_AGES:
        bucket = waiting.filter(first_seen__lte=now - newer)
        if older is not None:
            bucket = bucket.filter(first_seen__gt=now - older)
        backlog.append(bucket.count())
    periods = {}
    for target in ScanTarget.objects.filter(enabled=True).exclude(schedule_kind=ScheduleKind.MANUAL):
        period = freshness.period(target, now)
        periods[target.zone_id] = min(period, periods.get(target.zone_id, period))
    scheduled = Host.objects.filter(zone_id__in=periods).count()
    overdue = sum(
        Host.objects.filter(zone_id=zone_id, last_scanned__lt=now - period * freshness.OVERDUE_PERIODS).count()
        for zone_id, period in periods.items()
    )
    by_kind = Change.objects.filter(created_at__gte=now - timedelta(days=1)).values_list("kind").annotate(Count("id"))
    return {
        "counts": counts,
        "changes": {
            "day": Change.objects.filter(created_at__gte=now - timedelta(days=1)).count(),
            "week": Change.objects.filter(created_at__gte=now - timedelta(days=7)).count(),
        },
        "by_kind": dict(by_kind),
        "backlog": backlog,
        "oldest": waiting.aggregate(oldest=Min("first_seen"))["oldest"],
        "freshness": (scheduled, overdue, counts["hosts"] - scheduled),
    }


def shown(now) -> dict:
    """The figures as the overview and /metrics read them now (kept counts)."""
    counts, coverage = dashboard.host_figures(now)
    backlog = dashboard.review_backlog(now)
    assert counts == inventory_counts()
    return {
        "counts": counts,
        "changes": dashboard.change_counts(now),
        "by_kind": {kind: n for kind, n in dashboard.changes_by_kind(now).items() if n},
        "backlog": [bucket["count"] for bucket in backlog["buckets"]],
        "oldest": backlog["oldest"],
        "freshness": (coverage.hosts_scheduled, coverage.hosts_overdue, coverage.hosts_unscheduled),
    }


def assert_exact(*moments):
    """Every kept row equals the recount, and every figure the old aggregates, at each moment."""
    now = timezone.now()
    assert maintenance.differences(now) == []
    for moment in moments or (now,):
        assert shown(moment) == recount(moment), moment


# --- ways to write ------------------------------------------------------------------------


def scan(up: dict[str, list], silent=(), zone=None, now=None) -> ScanRun:
    """One completed scan of TCP 1-1024: ``up`` addresses answer with those ports
    open (the rest closed), ``silent`` ones were covered and did not answer."""
    zone = zone or Zone.default()
    now = now or timezone.now()
    closed = (("*", PortState.CLOSED, PortSet()),)
    observations = [
        HostObservation(
            address, True, (), tuple(PortObservation("tcp", port, PortState.OPEN) for port in ports), closed
        )
        for address, ports in up.items()
    ]
    with transaction.atomic():
        run = ScanRun.objects.create(
            zone=zone, trigger=Trigger.IMPORT, status=RunStatus.SUCCEEDED, created_at=now, started_at=now
        )
        chunk = ScanChunk.objects.create(run=run, index=0, status=ChunkStatus.SUCCEEDED, attempts=1)
        coverage = Coverage(frozenset(up) | frozenset(silent), PROBED, complete=True, observed_at=now)
        ingest(run=run, chunk=chunk, zone=zone, coverage=coverage, observations=observations, now=now)
    return run


def import_file(path: Path, zone: Zone) -> None:
    with open(path, "rb") as source:
        import_scan_file(source, zone=zone, name=path.name)


def open_service(address: str, port: int) -> Service:
    return Service.objects.get(host__address=address, port=port, state=PortState.OPEN)


def decide(reviewer, services, decision, scope=RuleScope.HOST, **request):
    justification = "tallies test"
    tokens = [review.token_for(service) for service in services]
    return review.decide(reviewer, tokens, review.DecisionRequest(decision, scope, justification, **request))


def hourly_target(zone: Zone, minutes: int = 60) -> ScanTarget:
    return ScanTarget.objects.create(
        name=f"every {minutes} min in {zone.name}",
        zone=zone,
        targets="127.73.0.0/16",
        profile=ScanProfile.objects.get(slug="quick"),
        schedule_kind=ScheduleKind.INTERVAL,
        schedule_interval=minutes,
        next_run_at=timezone.now() + timedelta(minutes=minutes),
    )


# --- every writer -------------------------------------------------------------------------


def test_real_scan_files_through_both_engines_are_counted_exactly(engine):
    """Every semantics scenario's files imported in order, each in its own zone: discoveries,
    openings, closings, filtered ports, unreachable and returning hosts, service changes,
    masscan imports, an address listed twice; the refused file rolls back and counts nothing."""
    for folder in sorted(SCENARIOS.iterdir()):
        zone = Zone.objects.create(name=folder.name.replace("_", "-")[:63])
        hourly_target(zone)
        for path in sorted(p for p in folder.iterdir() if p.suffix in (".xml", ".json")):
            try:
                import_file(path, zone)
            except NmapXmlError:
                assert folder.name == "nmap_error_concludes_nothing"
            assert_exact()
    assert Change.objects.filter(kind=ChangeKind.HOST_UNREACHABLE).exists()
    assert Service.objects.filter(state=PortState.FILTERED).exists()
    now = timezone.now()
    assert_exact(now, now + timedelta(days=1), now + timedelta(days=8), now + timedelta(days=31))


def test_reviews_rules_expiry_zone_moves_and_deletions_are_counted_exactly(engine, reviewer):
    dc1 = Zone.objects.create(name="dc1")
    hourly_target(Zone.default())
    scan({"127.73.0.1": [22, 80, 6379], "127.73.0.2": [22, 443]})
    scan({"127.73.1.1": [22, 3306]}, zone=dc1)
    assert_exact()

    # Reviews: approve on a host, reject everywhere (a violation on every host with 6379).
    decide(reviewer, [open_service("127.73.0.1", 22)], Decision.APPROVED)
    decide(reviewer, [open_service("127.73.0.1", 6379)], Decision.REJECTED, scope=RuleScope.GLOBAL)
    assert_exact()
    assert inventory_counts()["violating"] == 1

    # A rule that expires: approved now, unreviewed again once the scheduler's tick passes its expiry.
    soon = timezone.now() + timedelta(hours=1)
    decide(reviewer, [open_service("127.73.0.2", 443)], Decision.APPROVED, expires_at=soon)
    assert_exact()
    assert policy.expire(soon + timedelta(seconds=1)) == 1
    assert_exact()

    # A rule edited (a wider range) and one deleted.
    rule = PortRule.objects.create(
        scope=RuleScope.ZONE, zone=dc1, protocol="tcp", port_start=3306, port_end=3306,
        decision=Decision.REJECTED, justification="no databases in dc1",
    )  # fmt: skip
    policy.rule_changed(rule)
    assert_exact()
    before = PortRule.objects.get(pk=rule.pk)
    rule.port_start = 22
    rule.save()
    policy.rule_changed(before, rule)
    assert_exact()
    rule.delete()
    policy.rule_changed(before)
    assert_exact()

    # Ports open and close, a host goes quiet, then comes back.
    scan({"127.73.0.1": [22, 8080], "127.73.0.3": [25]}, silent=["127.73.0.2"])
    assert Host.objects.get(address="127.73.0.2").status == HostStatus.UNREACHABLE
    assert_exact()
    scan({"127.73.0.2": [22]})
    assert_exact()

    # A host moves zone (its overdue figure moves with it), another is deleted with its ports and changes.
    moved = Host.objects.get(address="127.73.0.3")
    moved.zone = dc1
    moved.save()
    policy.evaluate_hosts(Host.objects.filter(pk=moved.pk))
    assert_exact()
    Host.objects.filter(address="127.73.0.1").delete()
    assert_exact()
    assert not Change.objects.filter(host__address="127.73.0.1").exists()

    # Everything ages: the last scans, first sightings and changes move back in time.
    Host.objects.filter(address="127.73.0.2").update(last_scanned=F("last_scanned") - timedelta(hours=3))
    Service.objects.filter(port=22).update(first_seen=F("first_seen") - timedelta(days=9))
    Change.objects.filter(kind=ChangeKind.HOST_DISCOVERED).update(created_at=F("created_at") - timedelta(days=2))
    now = timezone.now()
    assert_exact(now, now + timedelta(hours=2, minutes=1), now + timedelta(days=6, hours=23), now + timedelta(days=40))


@pytest.mark.parametrize(
    "offset",
    [timedelta(0), timedelta(microseconds=1), timedelta(minutes=30), timedelta(hours=1) - timedelta(microseconds=1)],
    ids=["on-the-hour", "just-after", "half-past", "just-before-the-next"],
)
def test_every_window_is_exact_at_its_edges(offset):
    """An instant X within an hour; the figures read at X + 1 d, 7 d, 30 d and a zone's schedule,
    one microsecond either side and on the dot: the kept hours plus the instants within the
    edge hour give what the aggregates give."""
    hourly_target(Zone.default())
    scan({"127.73.2.1": [22, 80], "127.73.2.2": [443]})
    at = hour_of(timezone.now() - timedelta(days=40)) + offset
    Change.objects.filter(port=80).update(created_at=at)
    Change.objects.filter(port=443).update(created_at=at + timedelta(microseconds=1))
    Service.objects.filter(port=22).update(first_seen=at)
    Service.objects.filter(port=443).update(first_seen=at - timedelta(microseconds=1))
    Host.objects.filter(address="127.73.2.1").update(last_scanned=at)
    tick = timedelta(microseconds=1)
    edges = [timedelta(0), timedelta(hours=2), timedelta(days=1), timedelta(days=7), timedelta(days=30)]
    moments = [at + edge + nudge for edge in edges for nudge in (-tick, timedelta(0), tick)]
    assert_exact(*moments)


def test_a_rollback_counts_nothing(engine):
    scan({"127.73.3.1": [22]})
    kept = maintenance.kept()

    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), transaction.atomic():
        scan({"127.73.3.1": [80], "127.73.3.2": [443]})
        assert inventory_counts()["hosts"] == 2  # counted within the transaction...
        raise Abandoned
    assert maintenance.kept() == kept  # ...and not at all after its rollback
    assert_exact()


def test_compaction_folds_deltas_and_drops_change_buckets_too_old_to_be_read(engine):
    scan({"127.73.4.1": [22, 80]})
    scan({"127.73.4.1": [22]})
    Change.objects.filter(kind=ChangeKind.PORT_CLOSED).update(
        created_at=timezone.now() - CHANGES_KEPT - timedelta(hours=2)
    )
    figures = shown(timezone.now())
    maintenance.compact()
    assert not TallyDelta.objects.exists()
    assert not Tally.objects.filter(n=0).exists()
    assert not Tally.objects.filter(figure=Figure.CHANGES, bucket__lt=timezone.now() - CHANGES_KEPT).exists()
    assert shown(timezone.now()) == figures
    assert_exact()
    # Deleting the old change later leaves a negative row behind for an old bucket: never read, dropped next time.
    Change.objects.filter(kind=ChangeKind.PORT_CLOSED).delete()
    assert_exact()
    maintenance.compact()
    assert not Tally.objects.filter(figure=Figure.CHANGES, n__lt=0).exists()
    assert_exact()


def test_beat_folds_the_deltas_every_minute(engine, settings):
    from portwatch.celery import app
    from tallies.tasks import compact

    entry = settings.CELERY_BEAT_SCHEDULE["tallies-compact"]
    assert entry["task"] in app.tasks and entry["schedule"] == 60
    scan({"127.73.12.1": [22, 80]})
    compact.apply()
    assert not TallyDelta.objects.exists()
    assert Tally.objects.filter(figure=Figure.OPEN).get().n == 2
    assert_exact()


# --- the recount catches what the triggers miss -------------------------------------------


def check_foreign_keys_now() -> None:
    """PostgreSQL alters no table with foreign-key checks still queued in the transaction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def switch_off(trigger: str, table: str) -> None:
    check_foreign_keys_now()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        else:
            cursor.execute(f"DROP TRIGGER {trigger}")


def test_a_trigger_switched_off_is_caught_by_the_recount_and_put_back(engine):
    scan({"127.73.5.1": [22]})
    assert_exact()
    switch_off("tallies_change_insert", "scans_change")
    scan({"127.73.5.1": [22, 80]})
    problems = maintenance.differences()
    assert any(problem.startswith(f"{Figure.CHANGES}[{ChangeKind.PORT_OPENED}]") for problem in problems), problems
    with pytest.raises(CommandError, match="differ from a recount"):
        call_command("tallies", "check")

    check_foreign_keys_now()
    maintenance.ensure_triggers()  # what every migrate does: a missing or disabled trigger is put back, and counted
    assert maintenance.missing_triggers(connection) == set()
    assert_exact()
    scan({"127.73.5.1": [80]})
    assert_exact()
    call_command("tallies", "check")


def test_the_migration_counts_what_an_existing_installation_holds(engine):
    maintenance.uninstall(connection)
    scan({"127.73.6.1": [22, 80], "127.73.6.2": [443]})
    scan({"127.73.6.1": [22]})
    check_foreign_keys_now()
    migration = importlib.import_module("tallies.migrations.0003_exposure_per_port")
    migration.install_and_count(None, SimpleNamespace(connection=connection))
    assert_exact()
    assert inventory_counts()["hosts"] == 2
    scan({"127.73.6.3": [8080]})
    assert_exact()


# --- random histories ------------------------------------------------------------------------

ADDRESSES = [f"127.73.7.{n}" for n in range(1, 5)]
PORTS = [22, 80, 443, 6379]
operations = st.one_of(
    st.tuples(
        st.just("scan"),
        st.sampled_from(["sql", "orm"]),
        st.dictionaries(st.sampled_from(ADDRESSES), st.lists(st.sampled_from(PORTS), unique=True), max_size=3),
        st.lists(st.sampled_from(ADDRESSES), max_size=2),
    ),
    st.tuples(
        st.just("review"),
        st.sampled_from(Decision.values),
        st.sampled_from([RuleScope.HOST, RuleScope.GLOBAL]),
        st.integers(0, 15),
    ),
    st.tuples(st.just("rule"), st.sampled_from(PORTS), st.sampled_from(Decision.values), st.integers(-2, 2)),
    st.tuples(st.just("expire"), st.integers(0, 3)),
    st.tuples(st.just("delete"), st.sampled_from(ADDRESSES)),
    st.tuples(st.just("move"), st.sampled_from(ADDRESSES)),
    st.tuples(st.just("age"), st.sampled_from(["changes", "ports", "scans"]), st.integers(1, 24 * 40)),
    st.tuples(st.just("compact")),
)


def apply(operation, reviewer, zones) -> None:
    name, *args = operation
    now = timezone.now()
    if name == "scan":
        engine, up, silent = args
        if engine == "sql" and connection.vendor != "postgresql":
            engine = "orm"
        with override_settings(INGEST_SQL_ENGINE=engine == "sql"):
            scan(up, silent=[address for address in silent if address not in up])
    elif name == "review":
        decision, scope, which = args
        services = list(Service.objects.filter(state=PortState.OPEN).order_by("pk"))
        if services:
            decide(reviewer, [services[which % len(services)]], decision, scope=scope)
    elif name == "rule":
        port, decision, hours = args
        rule = PortRule.objects.create(
            scope=RuleScope.GLOBAL, protocol="tcp", port_start=port, port_end=port, decision=decision,
            justification="random", expires_at=now + timedelta(hours=hours) if hours else None,
        )  # fmt: skip
        policy.rule_changed(rule)
    elif name == "expire":
        policy.expire(now + timedelta(hours=args[0]))
    elif name == "delete":
        Host.objects.filter(address=args[0]).delete()
    elif name == "move":
        host = Host.objects.filter(address=args[0]).first()
        if host is not None:
            other = next(zone for zone in zones if zone.pk != host.zone_id)
            if not Host.objects.filter(zone=other, address=host.address).exists():
                host.zone = other
                host.save()
                policy.evaluate_hosts(Host.objects.filter(pk=host.pk))
    elif name == "age":
        what, hours = args
        back = timedelta(hours=hours, microseconds=hours)
        if what == "changes":
            Change.objects.filter(pk__in=Change.objects.order_by("pk").values("pk")[hours % 5 : hours % 5 + 3]).update(
                created_at=F("created_at") - back
            )
        elif what == "ports":
            Service.objects.filter(port=PORTS[hours % len(PORTS)]).update(first_seen=F("first_seen") - back)
        else:
            Host.objects.filter(address=ADDRESSES[hours % len(ADDRESSES)]).update(last_scanned=F("last_scanned") - back)
    else:
        maintenance.compact()


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(history=st.lists(operations, min_size=1, max_size=12))
def test_random_histories_keep_every_count_exact(reviewer, history):
    with transaction.atomic():
        zones = [Zone.default(), Zone.objects.get_or_create(name="random-dc2")[0]]
        for zone in zones:
            hourly_target(zone, minutes=90)
        ProbedPortSet.for_ports(PROBED)
        for operation in history:
            apply(operation, reviewer, zones)
        now = timezone.now()
        assert_exact(now, now + timedelta(hours=3), now + timedelta(days=1), now + timedelta(days=7, hours=1))
        transaction.set_rollback(True)


# --- concurrent writers (PostgreSQL) ---------------------------------------------------------


def in_thread(work, errors: list) -> threading.Thread:
    def run():
        try:
            work()
        except BaseException as error:  # reported by the test
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@POSTGRESQL_ONLY
@pytest.mark.django_db(transaction=True)
def test_two_ingests_committing_at_once_both_count(engine):
    ProbedPortSet.for_ports(PROBED)  # created once, committed: neither ingest waits on the other's insert
    both_written = threading.Barrier(2, timeout=60)
    errors: list = []

    def ingest_then_commit_with_the_other(prefix: int):
        def work():
            with override_settings(INGEST_SQL_ENGINE=engine == "sql"), transaction.atomic():
                scan({f"127.73.{prefix}.{n}": [22, 80] for n in range(1, 21)})
                both_written.wait()  # both transactions have written; neither has committed

        return work

    threads = [in_thread(ingest_then_commit_with_the_other(prefix), errors) for prefix in (8, 9)]
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert inventory_counts() == {"hosts": 40, "unreachable": 0, "open_ports": 80, "unreviewed": 80, "violating": 0}
    assert_exact()
    maintenance.compact()
    assert not TallyDelta.objects.exists()
    assert_exact()


@POSTGRESQL_ONLY
@pytest.mark.django_db(transaction=True)
def test_a_compaction_leaves_the_deltas_of_a_transaction_still_running_for_later():
    ProbedPortSet.for_ports(PROBED)
    scan({"127.73.10.1": [22]})
    written, go_on = threading.Event(), threading.Event()
    errors: list = []

    def slow_ingest():
        with transaction.atomic():
            scan({"127.73.10.2": [80, 443]})
            written.set()
            assert go_on.wait(timeout=60)

    thread = in_thread(slow_ingest, errors)
    assert written.wait(timeout=60)
    assert maintenance.compact() > 0  # folds the first scan's deltas, cannot see the second's
    go_on.set()
    thread.join(timeout=60)
    assert errors == []
    assert inventory_counts()["open_ports"] == 3
    assert_exact()
    maintenance.compact()
    assert not TallyDelta.objects.exists()
    assert_exact()


# --- what the overview and /metrics read ---------------------------------------------------------

INVENTORY_TABLES = ('"inventory_host"', '"inventory_service"', '"scans_change"')


@POSTGRESQL_ONLY
def test_the_overview_and_metrics_count_no_inventory_rows(client, viewer):
    """Their only reads of hosts, ports and changes are the latest few, by index with a LIMIT;
    every count comes from the kept tallies."""
    hourly_target(Zone.default())
    scan({"127.73.11.1": [22, 80], "127.73.11.2": [443]})
    token = Token.objects.create(user=viewer)
    client.force_login(viewer)
    requests = [
        (reverse("overview"), {}),
        (reverse("overview") + "?range=30", {}),
        (reverse("overview"), {"HX-Request": "true"}),
        (reverse("metrics"), {"Authorization": f"Token {token.key}"}),
    ]
    for url, headers in requests:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url, headers=headers).status_code == 200
        for query in queries.captured_queries:
            sql = query["sql"]
            if any(table in sql for table in INVENTORY_TABLES):
                assert " LIMIT " in sql and "COUNT(" not in sql.upper() and "SUM(" not in sql.upper(), (url, sql)
        assert any("tallies_tallyrow" in query["sql"] for query in queries.captured_queries)
