"""The exposure matrix (reach.matrix, reach.exposures): zones or tags by vantage point.

Its unfiltered cells are kept counts (triggers, ``tallies.sources``); these
tests hold them to a count of the rows (``matrix.counted``) and to the
tallies' own recount after every kind of write that moves them: scans from
the home and from elsewhere (both ingest engines on PostgreSQL), a port
closing and a host going silent, segmentation rules made and removed, tags
given and taken, a host moved to another zone, hosts and vantage points
deleted, and random histories of all of these. The cells' lists page through
both of a home's sources (the inventory and its own view) by cursor.
"""

import json
from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from inventory.choices import RuleScope
from inventory.models import Host, HostTag, RiskRule, Tag, Zone
from inventory.ports import PortSet
from reach import exposures, matrix, segmentation
from reach.matrix import ROWS_TAG, ROWS_ZONE, Query
from reach.models import SegmentationRule, VantagePoint
from reach.segmentation_choices import SegmentationMode as Mode
from scans.models import Change, ScanRun
from tallies import maintenance
from tests.factories import scan

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

ALL_PORTS = {"tcp": PortSet.parse("1-65535")}
A1, A2, A3 = "198.18.50.1", "198.18.50.2", "198.18.50.3"
B1 = "198.18.51.1"


def assert_kept():
    """Both matrices (zones, tags) from the kept counts equal a count of the rows, and every tally its recount.

    So do the narrowed ones summed per port (by port, protocol, risk by
    port and by name, and each rule the per-port counts can answer for).
    """
    for rows in (ROWS_ZONE, ROWS_TAG):
        assert matrix.kept(rows).as_numbers() == matrix.counted(Query(rows=rows)).as_numbers(), rows
        narrowed = [
            Query(rows=rows, ports=PortSet.parse("22,5432-7000")),
            Query(rows=rows, protocol="udp"),
            Query(rows=rows, risk=RiskRule.objects.get(protocol="tcp", port=6379).severity),
            Query(rows=rows, risk=1, ports=PortSet.parse("7000")),
            *(Query(rows=rows, rule=rule) for rule in SegmentationRule.objects.all()),
        ]
        for query in narrowed:
            if matrix.summed_per_port(query):
                assert matrix.per_port(query).as_numbers() == matrix.counted(query).as_numbers(), query
    assert maintenance.differences() == []


def look(vantage, hosts, **kwargs):
    return scan(vantage, hosts, probed=ALL_PORTS, **kwargs)


def make_rule(mode, vantages, *, ports=(1, 65535), scope=RuleScope.GLOBAL, **scope_fields):
    with transaction.atomic():
        rule = SegmentationRule.objects.create(
            mode=mode, scope=scope, protocol="tcp", port_start=ports[0], port_end=ports[1],
            justification="test", **scope_fields,
        )  # fmt: skip
        rule.vantage_points.set(vantages)
        segmentation.rule_changed(None, rule)
    return rule


def tag(host_address, name):
    tag_row, _ = Tag.objects.get_or_create(name=name)
    HostTag.objects.get_or_create(host=Host.objects.get(address=host_address), tag=tag_row)
    return tag_row


@pytest.fixture
def lab():
    """Zones dc1 (home vantage point dc1) and the default one; office-lan and dc1-app elsewhere."""
    dc1 = Zone.objects.create(name="dc1")
    office = VantagePoint.objects.create(name="office-lan")
    app = VantagePoint.objects.create(name="dc1-app")
    return SimpleNamespace(dc1=dc1, home=dc1.home_vantage, office=office, app=app)


def test_cells_count_what_each_vantage_point_reaches_and_the_violations(lab):
    dc1, office, app = lab.dc1, lab.office, lab.app
    look(None, {A1: {22: "open", 5432: "open"}, A2: {22: "open", 443: "open"}}, zone=dc1)
    look(office, {A1: {22: "open", 5432: "open"}, A2: {443: "open"}}, zone=dc1)
    look(app, {A1: {5432: "open"}}, zone=dc1)
    db = tag(A1, "db")
    make_rule(Mode.ONLY, [app], ports=(5432, 5432), scope=RuleScope.TAG, tag=db)
    assert_kept()

    numbers = matrix.kept(ROWS_ZONE).as_numbers()
    assert numbers[("dc1", "dc1")] == (4, 1)  # the home reaches 5432 on A1, which only dc1-app may
    assert numbers[("dc1", "office-lan")] == (3, 1)
    assert numbers[("dc1", "dc1-app")] == (1, 0)
    assert numbers[("default", "office-lan")] == (0, 0)
    by_tag = matrix.kept(ROWS_TAG).as_numbers()
    assert by_tag[("db", "dc1")] == (2, 1)
    assert by_tag[("db", "office-lan")] == (2, 1)
    assert by_tag[("db", "dc1-app")] == (1, 0)

    # A port closes from office-lan, the violation ends; A2 goes silent from the home (stale counts as open).
    look(office, {A1: {22: "open"}, A2: {443: "open"}}, zone=dc1)
    look(None, {A1: {22: "open", 5432: "open"}}, silent=[A2], zone=dc1)
    assert_kept()
    numbers = matrix.kept(ROWS_ZONE).as_numbers()
    assert numbers[("dc1", "office-lan")] == (2, 0)
    assert numbers[("dc1", "dc1")] == (4, 1)


def test_tags_zone_moves_and_deletions_move_the_counts(lab):
    dc1, office = lab.dc1, lab.office
    look(None, {A1: {22: "open", 6379: "open"}, A2: {80: "open"}}, zone=dc1)
    look(office, {A1: {22: "open", 6379: "open"}, A2: {80: "open"}}, zone=dc1)
    look(None, {B1: {22: "open"}})
    make_rule(Mode.DENY, [office], ports=(6379, 6379))
    tag(A1, "db"), tag(A2, "db"), tag(A2, "web"), tag(B1, "web")
    assert_kept()

    HostTag.objects.filter(host__address=A2, tag__name="db").delete()
    assert_kept()
    assert matrix.kept(ROWS_TAG).as_numbers()[("db", "office-lan")] == (2, 1)

    # A1 moves zone: its ports and its violation go with it (the home's view becomes the default zone's home's).
    moved = Host.objects.get(address=A1)
    moved.zone = Zone.default()
    moved.save()
    assert_kept()
    numbers = matrix.kept(ROWS_ZONE).as_numbers()
    assert numbers[("default", "office-lan")] == (2, 1)
    assert numbers[("default", "default")] == (3, 0)  # B1's 22 and A1's two (the violation was office-lan's)

    # A tag deleted, a host deleted, a vantage point deleted with its view: each takes its counts along.
    Tag.objects.filter(name="web").delete()
    assert_kept()
    Host.objects.filter(address=A2).delete()
    assert_kept()
    with transaction.atomic():
        for rule in SegmentationRule.objects.all():
            segmentation.delete_rule(rule)
    assert_kept()
    Change.objects.filter(vantage=office).delete()  # what keeps a vantage point that scanned from deletion
    ScanRun.objects.filter(vantage=office).delete()
    office.delete()
    assert_kept()
    assert all(name != "office-lan" for _, name in matrix.kept(ROWS_ZONE).as_numbers())


def test_filters_count_the_ports_they_name(lab):
    dc1, office = lab.dc1, lab.office
    # A2's 22 says "redis", but the rule for port 22 (SSH, lower) rates it, not the name's.
    home_ports = {
        A1: {22: "open", 6379: ("open", "redis"), 7000: ("open", "redis")},
        A2: {80: "open", 22: ("open", "redis")},
    }
    look(None, home_ports, zone=dc1)
    look(office, {A1: {22: "open", 6379: ("open", "redis")}, A2: {80: "open"}}, zone=dc1)
    rule = make_rule(Mode.DENY, [office], ports=(6000, 7999))

    def cell(vantage, **filters):
        query = Query(**filters)
        counted = matrix.counted(query).as_numbers()
        assert matrix.read_matrix(query).as_numbers() == counted, "summed per port, as counted"
        return counted[("dc1", vantage)]

    assert cell("dc1", ports=PortSet.parse("22,80")) == (3, 0)
    assert cell("office-lan", ports=PortSet.parse("6000-7000")) == (1, 1)
    critical = RiskRule.objects.filter(port=6379, protocol="tcp").values_list("severity", flat=True).first()
    assert critical is not None, "the built-in risk table names Redis"
    # Redis by its port, and by its name on 7000 (no rule names 7000).
    assert cell("dc1", risk=critical) == (2, 0)
    assert cell("office-lan", rule=rule) == (1, 1)
    assert cell("dc1", rule=rule) == (2, 0)  # the home is not a vantage point the rule denies


def test_narrowed_matrices_are_the_per_port_counts_summed(lab):
    """Port, risk (by port and by name) and rule filters of every scope the per-port counts answer, both rows."""
    dc1, office = lab.dc1, lab.office
    redis = ("open", "redis")
    look(None, {A1: {22: "open", 6379: "open", 7000: redis}, A2: {22: "open", 7000: redis}}, zone=dc1)
    look(office, {A1: {22: "open", 6379: "open", 7000: redis}, A2: {7000: redis}}, zone=dc1)
    look(None, {B1: {22: "open", 7000: redis}})
    look(office, {B1: {7000: redis}})
    db, _web = tag(A1, "db"), tag(A2, "web")
    tag(B1, "db")
    by_tag = make_rule(Mode.DENY, [office], ports=(7000, 7000), scope=RuleScope.TAG, tag=db)
    by_zone = make_rule(Mode.DENY, [office], ports=(6000, 7999), scope=RuleScope.ZONE, zone=dc1)
    everywhere = make_rule(Mode.DENY, [office], ports=(22, 22))
    critical = RiskRule.objects.get(protocol="tcp", port=6379).severity
    assert not RiskRule.objects.filter(protocol="tcp", port=7000).exists(), "7000 is rated by its name"

    def both(query):
        summed = matrix.per_port(query).as_numbers()
        assert summed == matrix.counted(query).as_numbers(), query
        return summed

    for rows in (ROWS_ZONE, ROWS_TAG):
        for query in (
            Query(rows=rows, ports=PortSet.parse("22,7000")),
            Query(rows=rows, ports=PortSet.parse("6000-7999"), protocol="tcp"),
            Query(rows=rows, risk=critical),
            Query(rows=rows, risk=critical, rule=by_zone),
            Query(rows=rows, rule=by_zone),
            Query(rows=rows, rule=everywhere, ports=PortSet.parse("1-1024")),
        ):
            both(query)
    # Redis by its port on A1 and by its name on 7000 (A1 breaks the tag's rule there, A2 the zone's).
    assert both(Query(risk=critical))[("dc1", "office-lan")] == (3, 3)
    assert both(Query(risk=critical))[("default", "office-lan")] == (1, 1)
    assert both(Query(rule=by_tag))[("dc1", "office-lan")] == (1, 1)  # A1's 7000 (db); A2 has no db tag
    assert both(Query(rule=by_tag))[("default", "office-lan")] == (1, 1)
    assert both(Query(rows=ROWS_TAG, rule=by_zone))[("web", "office-lan")] == (1, 1)
    # A tag's rule by tag rows (the rule's hosts' other tags too) is counted from the rows.
    assert not matrix.summed_per_port(Query(rows=ROWS_TAG, rule=by_tag))
    assert matrix.read_matrix(Query(rows=ROWS_TAG, rule=by_tag)).as_numbers()[("db", "office-lan")] == (2, 2)


def test_a_cells_list_pages_through_the_inventory_and_the_homes_own_view(lab):
    dc1, home = lab.dc1, lab.home
    ports = dict.fromkeys((22, 80, 443), "open")
    look(None, {A1: ports, A2: ports, A3: ports}, zone=dc1)
    # A target of the default zone scanned from dc1's home: its own view, not the inventory.
    look(home, {B1: ports})
    web = tag(A2, "web")
    tag(B1, "web")
    tag(A3, "web")
    assert matrix.kept(ROWS_TAG).as_numbers()[("web", "dc1")] == (9, 0)

    seen, after = [], None
    for _ in range(10):
        page = exposures.page(home, tag=web, query=Query(), after=after, size=2)
        seen.extend((row.host.address, row.port, row.home) for row in page.rows)
        if page.next is None:
            break
        after = page.next
    expected = {(address, port, address != B1) for address in (A2, A3, B1) for port in ports}
    assert len(seen) == 9 and set(seen) == expected
    hosts = {address: Host.objects.get(address=address).pk for address in (A2, A3, B1)}
    assert [hosts[address] for address, _, _ in seen] == sorted(hosts[address] for address, _, _ in seen)


@pytest.mark.parametrize("client_fixture", ["viewer"])
def test_pages_show_the_cells_and_their_lists_escaped(client, lab, viewer, client_fixture):
    dc1, office = lab.dc1, lab.office
    look(office, {A1: {22: ("open", "<script>alert(1)</script>")}}, zone=dc1)
    make_rule(Mode.DENY, [office], ports=(22, 22))
    client.force_login(viewer)
    page = client.get(reverse("exposure-matrix"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "1 open" in body and "1 violating" in body
    cell = client.get(reverse("exposure-cell", args=["office-lan"]), {"zone": "dc1"})
    assert cell.status_code == 200
    text = cell.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert" not in text
    assert "violates" in text
    listed = client.get(reverse("exposure-cell", args=["office-lan"]), {"zone": "dc1", "violations": "1"})
    assert A1 in listed.content.decode()
    # The port's page: from each vantage point, the rule that governs it and the violation.
    host = Host.objects.get(address=A1)
    port_page = client.get(reverse("port-detail", args=[host.public_id, "tcp", 22])).content.decode()
    assert "violation since" in port_page
    look(None, {A1: {22: "open"}}, zone=dc1)
    port_page = client.get(reverse("port-detail", args=[host.public_id, "tcp", 22])).content.decode()
    assert port_page.count("violation since") == 1 and "no rule" in port_page  # the home: no rule speaks

    bad = client.get(reverse("exposure-matrix"), {"port": "22,70000", "risk": "9"})
    assert bad.status_code == 400
    assert "70000 is not a port" in bad.content.decode()
    cursor = client.get(reverse("exposure-cell", args=["office-lan"]), {"cursor": "1-tcp-<x>"})
    assert cursor.status_code == 400 and "not valid" in cursor.content.decode()
    assert client.get(reverse("exposure-cell", args=["nowhere"])).status_code == 404


def test_pages_and_api_need_login(client, lab):
    for url in (reverse("exposure-matrix"), reverse("exposure-cell", args=["office-lan"])):
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]
    for url in ("/api/exposure-matrix/", "/api/exposures/?vantage=office-lan"):
        assert client.get(url).status_code in (401, 403)


def test_api_lists_the_matrix_and_a_cell(client, lab, viewer):
    dc1, office = lab.dc1, lab.office
    look(office, {A1: {22: "open", 23: "open"}, A2: {22: "open"}}, zone=dc1)
    rule = make_rule(Mode.DENY, [office], ports=(23, 23))
    token = Token.objects.create(user=viewer)
    auth = {"HTTP_AUTHORIZATION": f"Token {token.key}"}
    body = client.get("/api/exposure-matrix/", **auth).json()
    assert body["rows"] == "zone" and body["filtered"] is False
    row = next(row for row in body["results"] if row["name"] == "dc1")
    assert {"vantage": "office-lan", "exposed": 3, "violated": 1} in row["cells"]
    filtered = client.get("/api/exposure-matrix/", {"port": "22"}, **auth).json()
    row = next(row for row in filtered["results"] if row["name"] == "dc1")
    assert {"vantage": "office-lan", "exposed": 2, "violated": 0} in row["cells"]

    listed = client.get("/api/exposures/", {"vantage": "office-lan", "zone": "dc1"}, **auth).json()
    assert [(item["host"]["address"], item["port"]) for item in listed["results"]] == [(A1, 22), (A1, 23), (A2, 22)]
    assert [item["violates"] for item in listed["results"]] == [None, str(rule.public_id), None]
    assert listed["next"] is None

    assert client.get("/api/exposures/", **auth).status_code == 400
    bad = client.get("/api/exposure-matrix/", {"rows": "hosts"}, **auth)
    assert bad.status_code == 400 and "rows" in bad.json()
    assert client.get("/api/exposures/", {"vantage": "office-lan", "cursor": "x"}, **auth).status_code == 400


def test_manage_py_prints_the_matrix_and_names_a_bad_filter(lab):
    look(lab.office, {A1: {22: "open", 23: "open"}}, zone=lab.dc1)
    make_rule(Mode.DENY, [lab.office], ports=(23, 23))
    out = StringIO()
    call_command("exposure_matrix", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if line.startswith("dc1 "))
    assert line.split()[[*matrix.kept().vantages].index(lab.office) + 1] == "2/1"
    out = StringIO()
    call_command("exposure_matrix", "--format=csv", "--port=23", stdout=out)
    assert "dc1,office-lan,1,1" in out.getvalue().splitlines()
    out = StringIO()
    call_command("exposure_matrix", "--format=json", "--rows=tag", stdout=out)
    assert json.loads(out.getvalue())["rows"] == "tag"
    with pytest.raises(CommandError, match="--port: 70000 is not a port"):
        call_command("exposure_matrix", "--port=70000")


# --- random histories ----------------------------------------------------------------------------

ADDRESSES = ["198.18.52.1", "198.18.52.2", "198.18.52.3"]
# 7000 answers as "redis": rated by its name (no risk rule names the port).
PORTS = [22, 443, 5432, 7000]
operations = st.one_of(
    st.tuples(
        st.just("scan"),
        st.sampled_from(["home", "office", "home-of-default"]),
        st.sampled_from(["dc1", "default"]),
        st.dictionaries(st.sampled_from(ADDRESSES), st.lists(st.sampled_from(PORTS), unique=True), max_size=3),
        st.lists(st.sampled_from(ADDRESSES), max_size=1),
    ),
    st.tuples(st.just("tag"), st.sampled_from(ADDRESSES), st.sampled_from(["db", "web"]), st.booleans()),
    st.tuples(st.just("move"), st.sampled_from(ADDRESSES)),
    st.tuples(st.just("delete"), st.sampled_from(ADDRESSES)),
    st.tuples(
        st.just("rule"),
        st.sampled_from(PORTS),
        st.sampled_from(["office", "home"]),
        st.sampled_from(["all", "dc1", "db"]),
    ),
    st.tuples(
        st.just("unrule"),
    ),
    st.tuples(
        st.just("compact"),
    ),
)


def apply(operation, vantages):
    name, *args = operation
    if name == "scan":
        who, zone_name, up, silent = args
        zone = Zone.objects.get(name=zone_name)
        vantage = {"home": None, "office": vantages["office"], "home-of-default": Zone.default().home_vantage}[who]
        up = {
            address: {port: ("open", "redis") if port == 7000 else "open" for port in ports}
            for address, ports in up.items()
        }
        look(vantage, up, silent=[address for address in silent if address not in up], zone=zone)
    elif name == "tag":
        address, tag_name, give = args
        host = Host.objects.filter(address=address).first()
        if host is not None:
            tag_row, _ = Tag.objects.get_or_create(name=tag_name)
            if give:
                HostTag.objects.get_or_create(host=host, tag=tag_row)
            else:
                HostTag.objects.filter(host=host, tag=tag_row).delete()
    elif name == "move":
        host = Host.objects.filter(address=args[0]).first()
        if host is not None:
            other = Zone.default() if host.zone.name == "dc1" else Zone.objects.get(name="dc1")
            if not Host.objects.filter(zone=other, address=host.address).exists():
                host.zone = other
                host.save()
    elif name == "delete":
        Host.objects.filter(address=args[0]).delete()
    elif name == "rule":
        port, who, scope = args
        vantage = vantages["office"] if who == "office" else Zone.objects.get(name="dc1").home_vantage
        if scope == "dc1":
            make_rule(Mode.DENY, [vantage], ports=(port, port), scope=RuleScope.ZONE, zone=Zone.objects.get(name="dc1"))
        elif scope == "db":
            tag_row, _ = Tag.objects.get_or_create(name="db")
            make_rule(Mode.DENY, [vantage], ports=(port, port), scope=RuleScope.TAG, tag=tag_row)
        else:
            make_rule(Mode.DENY, [vantage], ports=(port, port))
    elif name == "unrule":
        for rule in SegmentationRule.objects.all()[:1]:
            segmentation.delete_rule(rule)
    else:
        maintenance.compact()


@hypothesis_settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(history=st.lists(operations, min_size=1, max_size=10))
def test_random_histories_keep_every_cell_exact(history):
    with transaction.atomic():
        Zone.objects.get_or_create(name="dc1")
        vantages = {"office": VantagePoint.objects.get_or_create(name="office-lan")[0]}
        for operation in history:
            apply(operation, vantages)
            assert_kept()
        transaction.set_rollback(True)


def test_the_migration_counts_what_an_installation_already_holds(lab):
    dc1, office = lab.dc1, lab.office
    look(office, {A1: {22: "open"}}, zone=dc1)
    make_rule(Mode.DENY, [office], ports=(22, 22))
    tag(A1, "db")
    before = matrix.kept(ROWS_TAG).as_numbers()
    maintenance.rebuild()
    assert matrix.kept(ROWS_TAG).as_numbers() == before
    assert before[("db", "office-lan")] == (1, 1)
    # (An expired rule's violations end with the expiry task, and the counts with them.)
    rule = SegmentationRule.objects.get()
    SegmentationRule.objects.filter(pk=rule.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    segmentation.expire(timezone.now())
    assert_kept()
    assert matrix.kept(ROWS_TAG).as_numbers()[("db", "office-lan")] == (1, 0)
