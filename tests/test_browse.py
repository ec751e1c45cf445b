"""Hosts and ports lists: search, filters, sorting, exports, escaping, and a constant query count."""

import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inventory import policy
from inventory.models import Host, HostTag, PortRule, Service, Tag, Zone
from tests.factories import observe

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet():
    dc1 = Zone.objects.create(name="dc1")
    observe(
        {"127.65.0.1": [22, 6379], "127.65.0.2": [(80, "http", "nginx")], "127.65.1.1": [6379]},
        hostnames={"127.65.0.2": ["web.example"]},
    )
    observe({"127.65.0.1": [443], "127.66.0.1": [22]}, zone=dc1)
    web = Tag.objects.create(name="web")
    HostTag.objects.create(host=Host.objects.get(address="127.65.0.2"), tag=web)
    rule = PortRule.objects.create(
        scope="global", protocol="tcp", port_start=6379, port_end=6379, decision="rejected", justification="no redis"
    )
    policy.rule_changed(rule)
    policy.evaluate_hosts(Host.objects.all())
    return dc1


def hosts(client, **query):
    response = client.get(reverse("host-list"), query)
    assert response.status_code == 200
    return [(host.zone.name, host.address) for host in response.context["page"].object_list]


def ports(client, **query):
    response = client.get(reverse("port-list"), query)
    assert response.status_code == 200
    return [(s.host.zone.name, s.host.address, s.port) for s in response.context["page"].object_list]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "127.65.0.2"}, [("default", "127.65.0.2")]),
        ({"q": "127.65.0.0/24"}, [("default", "127.65.0.1"), ("dc1", "127.65.0.1"), ("default", "127.65.0.2")]),
        ({"q": "6379"}, [("default", "127.65.0.1"), ("default", "127.65.1.1")]),
        ({"q": "80/tcp"}, [("default", "127.65.0.2")]),
        ({"q": "web.exa"}, [("default", "127.65.0.2")]),
        ({"q": "nginx"}, [("default", "127.65.0.2")]),
        ({"zone": "dc1"}, [("dc1", "127.65.0.1"), ("dc1", "127.66.0.1")]),
        ({"tag": "web"}, [("default", "127.65.0.2")]),
        ({"policy": "violating"}, [("default", "127.65.0.1"), ("default", "127.65.1.1")]),
        ({"risk": "3"}, [("default", "127.65.0.1"), ("default", "127.65.1.1")]),
        ({"changed": "1", "zone": "dc1"}, [("dc1", "127.65.0.1"), ("dc1", "127.66.0.1")]),
    ],
)
@pytest.mark.sqlite  # the search box's network query is the in_cidr lookup, pw_in_cidr on SQLite
def test_host_search_and_filters(as_viewer, fleet, query, expected):
    assert sorted(hosts(as_viewer, **query), key=lambda row: (row[1], row[0])) == sorted(
        expected, key=lambda row: (row[1], row[0])
    )


def test_hosts_sort_by_violations(as_viewer, fleet):
    first = hosts(as_viewer, sort="violating")[:2]
    assert {address for _, address in first} == {"127.65.0.1", "127.65.1.1"}


def test_ports_view_every_host_with_6379_open_and_everything_unreviewed_in_dc1(as_viewer, fleet):
    assert ports(as_viewer, port="6379") == [("default", "127.65.0.1", 6379), ("default", "127.65.1.1", 6379)]
    assert sorted(ports(as_viewer, policy="unreviewed", zone="dc1")) == [
        ("dc1", "127.65.0.1", 443),
        ("dc1", "127.66.0.1", 22),
    ]


@pytest.mark.parametrize(
    "query",
    [{"risk": "99"}, {"port": "70000"}, {"zone": "nowhere"}, {"policy": "maybe"}, {"sort": "; DROP TABLE"}],
)
def test_bad_filters_say_so_and_show_nothing(as_viewer, fleet, query):
    response = as_viewer.get(reverse("port-list"), query)
    assert response.status_code == 200
    assert not response.context["page"].object_list
    assert response.context["filter"].errors


def test_a_bad_page_link_is_a_clear_400(as_viewer, fleet):
    response = as_viewer.get(reverse("host-list"), {"cursor": "abc"})
    assert response.status_code == 400
    assert "This page link is no longer valid" in response.content.decode()


def test_csv_export_neutralises_formulas_and_keeps_the_filters(as_viewer, fleet):
    observe({"127.65.9.9": [25]}, hostnames={"127.65.9.9": ['=HYPERLINK("http://evil")', "@sum", "+1", "-2"]})
    response = as_viewer.get(reverse("host-list"), {"q": "127.65.9.0/24", "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["address"] for row in rows] == ["127.65.9.9"]
    assert rows[0]["hostnames"].startswith("'=HYPERLINK")
    response = as_viewer.get(reverse("port-list"), {"port": "6379", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["address"] for row in rows} == {"127.65.0.1", "127.65.1.1"}
    assert {row["policy"] for row in rows} == {"rejected"}


def test_json_export_is_data(as_viewer, fleet):
    response = as_viewer.get(reverse("port-list"), {"zone": "dc1", "format": "json"})
    data = json.loads(b"".join(response.streaming_content))
    assert sorted((row["address"], row["port"]) for row in data) == [("127.65.0.1", 443), ("127.66.0.1", 22)]


def test_text_from_scanned_hosts_is_escaped(as_viewer):
    observe(
        {"127.65.7.7": [(8080, "http", "<script>alert(1)</script>")]},
        hostnames={"127.65.7.7": ["<img src=x onerror=alert(2)>"]},
    )
    host = Host.objects.get(address="127.65.7.7")
    service = Service.objects.get(host=host)
    lists = (reverse("host-list"), reverse("port-list"), reverse("change-list"), reverse("overview"))
    for url in (*lists, host.get_absolute_url(), service.get_absolute_url()):
        page = as_viewer.get(url).content.decode()
        assert "<script>alert(1)" not in page and "<img src=x" not in page, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page or "&lt;img src=x" in page, url


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_pages_make_the_same_number_of_queries_for_5_or_60_rows(as_viewer):
    tag = Tag.objects.create(name="bulk")
    observe({f"127.67.0.{i}": [22, 80] for i in range(1, 6)})
    for host in Host.objects.all():
        HostTag.objects.create(host=host, tag=tag)
    small_host = Host.objects.first()
    urls = [reverse("host-list"), reverse("port-list"), reverse("review-queue"), reverse("overview")]
    small = [_queries(as_viewer, url) for url in urls] + [_queries(as_viewer, small_host.get_absolute_url())]
    observe({f"127.67.1.{i}": list(range(1, 12)) for i in range(1, 56)})
    for host in Host.objects.all():
        HostTag.objects.get_or_create(host=host, tag=tag)
    big_host = Host.objects.get(address="127.67.1.1")
    big = [_queries(as_viewer, url) for url in urls] + [_queries(as_viewer, big_host.get_absolute_url())]
    assert small == big


def test_ports_under_zone_tag_and_host_rules_list_without_a_query_per_row(as_viewer):
    """A rule's scope names its zone, tag or host in the policy badge: read with the page, not per row."""
    dc9 = Zone.objects.create(name="dc9")
    tag = Tag.objects.create(name="edge")

    def fleet_of(addresses):
        observe({address: [22, 80, 443] for address in addresses}, zone=dc9)
        for host in Host.objects.all():
            HostTag.objects.get_or_create(host=host, tag=tag)
        rules = [
            PortRule(scope="zone", zone=dc9, protocol="tcp", port_start=22, port_end=22, decision="approved"),
            PortRule(scope="tag", tag=tag, protocol="tcp", port_start=80, port_end=80, decision="approved"),
        ]
        rules += [
            PortRule(scope="host", host=host, protocol="tcp", port_start=443, port_end=443, decision="approved")
            for host in Host.objects.filter(address__in=addresses)
        ]
        for rule in rules:
            rule.justification = "test"
            rule.save()
            policy.rule_changed(rule)

    urls = [reverse("port-list"), reverse("review-queue") + "?policy=approved", reverse("change-list")]
    fleet_of([f"127.68.0.{i}" for i in range(1, 3)])
    small = [_queries(as_viewer, url) for url in urls]
    fleet_of([f"127.68.1.{i}" for i in range(1, 16)])
    page = as_viewer.get(reverse("port-list")).content.decode()
    assert "zone dc9" in page and "tag edge" in page and "host 127.68." in page
    assert [_queries(as_viewer, url) for url in urls] == small


def test_filter_labels_read_well(as_viewer):
    page = as_viewer.get(reverse("port-list")).content.decode()
    assert "[invalid name]" not in page and "Host zone" not in page
    assert ">Tag <" in page or "Tag <select" in page


def test_the_zone_list_counts_hosts_without_counting_the_inventory(as_viewer, fleet):
    """Hosts per zone come from the kept counts (one small read), and match the inventory."""
    Host.objects.filter(address="127.65.1.1").delete()
    with CaptureQueriesContext(connection) as queries:
        response = as_viewer.get(reverse("zone-list"))
    assert response.status_code == 200
    shown = {zone.name: zone.host_count for zone in response.context["object_list"]}
    assert shown == {zone.name: zone.hosts.count() for zone in Zone.objects.all()}
    assert shown["dc1"] == 2 and shown[Zone.default().name] == 2
    host_table = Host._meta.db_table
    assert not [q["sql"] for q in queries.captured_queries if f'FROM "{host_table}"' in q["sql"]]


def test_badges_escape_what_people_typed(as_viewer, fleet):
    """Policy and risk badges are built in Python: a rule's justification and a risk label stay text."""
    from inventory.models import RiskRule

    rule = PortRule.objects.get(port_start=6379)
    rule.justification = '"><script>alert(1)</script>'
    rule.save()
    RiskRule.objects.filter(protocol="tcp", port=6379).update(label="<b>Redis</b>")
    body = as_viewer.get(reverse("port-list"), {"port": "6379"}).content.decode()
    assert "<script>alert(1)</script>" not in body and "<b>Redis</b>" not in body
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;b&gt;Redis&lt;/b&gt;" in body
    assert 'class="policy policy-rejected"' in body and ">violation</span>" in body


@pytest.mark.sqlite
def test_a_text_search_finds_hostnames_and_products_alike(as_viewer, fleet):
    """The search runs its hostname and product sides apart when one finds nothing; together when both do."""
    observe({"127.65.2.1": [(8080, "http", "webapp")]}, hostnames={"127.65.2.2": ["db.example"]})
    observe({"127.65.2.2": [5432]}, hostnames={"127.65.2.2": ["webapp.example"]})
    found = sorted(address for _, address in hosts(as_viewer, q="webapp"))
    assert found == ["127.65.2.1", "127.65.2.2"]
    assert sorted((a, p) for _, a, p in ports(as_viewer, q="webapp")) == [("127.65.2.1", 8080), ("127.65.2.2", 5432)]
    assert [address for _, address in hosts(as_viewer, q="webapp.ex")] == ["127.65.2.2"]
    assert hosts(as_viewer, q="nothing-like-it") == []


@pytest.mark.parametrize("small_tag_hosts", [0, 1, 2000])
@pytest.mark.sqlite
def test_a_tag_filters_alike_by_its_hosts_ids_or_by_a_subquery(as_viewer, fleet, monkeypatch, small_tag_hosts):
    """Small tags are filtered by their hosts' ids, big ones by a subquery: the same rows either way."""
    from inventory import filters

    monkeypatch.setattr(filters, "SMALL_TAG_HOSTS", small_tag_hosts)
    web = Tag.objects.get(name="web")
    for address in ("127.65.0.1", "127.65.1.1"):
        HostTag.objects.get_or_create(host=Host.objects.get(address=address, zone=Zone.default()), tag=web)
    assert sorted(address for _, address in hosts(as_viewer, tag="web")) == ["127.65.0.1", "127.65.0.2", "127.65.1.1"]
    assert sorted((a, p) for _, a, p in ports(as_viewer, tag="web")) == [
        ("127.65.0.1", 22),
        ("127.65.0.1", 6379),
        ("127.65.0.2", 80),
        ("127.65.1.1", 6379),
    ]
    changes = as_viewer.get(reverse("change-list"), {"tag": "web"}).context["page"].object_list
    tagged = set(HostTag.objects.filter(tag=web).values_list("host_id", flat=True))
    assert changes and {change.host_id for change in changes} <= tagged
    api = as_viewer.get("/api/changes/", {"tag": "web"}).json()["results"]
    assert len(api) == len(changes)


def test_list_columns_sort_by_clicking_their_headings(as_viewer):
    observe({"127.67.2.1": [22], "127.67.2.2": [22, 80, 443], "127.67.2.3": [22, 80]})
    page = as_viewer.get(reverse("host-list") + "?zone=default&page=1").content.decode()
    # A heading links to the same list sorted by it: filters kept, the page dropped (a new order starts anew).
    assert '<th><a href="?zone=default&amp;sort=open" title="Sort by open">Open</a></th>' in page
    current = '<th aria-sort="ascending"><a href="?zone=default">Address <span aria-hidden="true">▲</span></a></th>'
    assert current in page
    page = as_viewer.get(reverse("host-list") + "?zone=default&sort=open").content.decode()
    assert '<th aria-sort="descending"><a href="?zone=default&amp;sort=open">Open' in page
    assert page.index("127.67.2.2") < page.index("127.67.2.3") < page.index("127.67.2.1")
    ports = as_viewer.get(reverse("port-list") + "?sort=port").content.decode()
    assert '<th aria-sort="ascending"><a href="?sort=port">Port' in ports and 'href="?sort=host"' in ports
    # The overview's short list has plain headings.
    assert "aria-sort" not in as_viewer.get(reverse("overview")).content.decode()


def test_the_hosts_export_lists_tags_without_a_query_per_host(as_viewer):
    tag = Tag.objects.create(name="edge")

    def export() -> tuple[list[dict], int]:
        with CaptureQueriesContext(connection) as captured:
            response = as_viewer.get(reverse("host-list"), {"format": "csv"})
            body = b"".join(response.streaming_content).decode()
        return list(csv.DictReader(io.StringIO(body))), len(captured)

    observe({f"127.69.0.{i}": [22] for i in range(1, 4)})
    for host in Host.objects.all():
        HostTag.objects.create(host=host, tag=tag)
    rows, few = export()
    assert {row["tags"] for row in rows} == {"edge"}
    observe({f"127.69.1.{i}": [22] for i in range(1, 41)})
    rows, many = export()
    assert len(rows) == 43 and [row["tags"] for row in rows].count("edge") == 3
    assert many == few


def test_list_filters_read_their_choices_without_a_server_side_cursor(as_viewer, fleet):
    """A zone or tag select is a few rows: one plain query, not DECLARE/FETCH/CLOSE (portwatch.choice_filters)."""
    Tag.objects.create(name="edge")
    urls = [reverse(name) for name in ("host-list", "port-list", "change-list", "certificate-list")]
    for url in urls:
        with CaptureQueriesContext(connection) as captured:
            page = as_viewer.get(url).content.decode()
        assert not [query["sql"] for query in captured.captured_queries if "DECLARE" in query["sql"]], url
        assert '<option value="dc1">dc1</option>' in page or "dc1" in page, url
    page = as_viewer.get(reverse("host-list")).content.decode()
    assert '<option value="edge">edge</option>' in page
