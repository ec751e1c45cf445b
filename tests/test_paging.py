"""Keyset pages: every row once, in order, forward and back, at any depth.

The lists page by cursor (``inventory.paging``): "Next" and "Previous" carry
the sort values of a row, never a page number or an OFFSET. These walk each
list's sorts to the end and back with a few rows a page, over a fleet built
for ties (many hosts share a risk, an address repeats across zones, a scan
stamps all its changes with one instant) and NULLs (hosts that never changed).
"""

import base64
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from axes.models import AccessAttempt
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from alerts.views import NotificationListView
from inventory import audit, paging
from inventory.choices import Severity
from inventory.filters import HOST_SORTS, HostFilter, ServiceFilter
from inventory.models import AuditEntry, Host, Service, Zone
from inventory.views import AuditListView, HostListView, ReviewQueueView, ServiceListView
from portwatch.login_views import LockoutListView
from scans.models import Change, ScanRun
from scans.views import ChangeListView, RunListView
from tests.factories import observe
from tests.test_api import api_client

pytestmark = pytest.mark.django_db

PER_PAGE = 4
BAD_LINK = "This page link is no longer valid"


@pytest.fixture
def fleet():
    """26 hosts in two zones (five addresses in both), 2-4 ports each, two scans' worth of changes."""
    dc1 = Zone.objects.create(name="dc1")
    default = {f"127.70.0.{n}": [(22, "ssh"), (80, "http"), (6379, "redis")][: 2 + n % 2] for n in range(1, 22)}
    observe(default)
    observe({f"127.70.0.{n}": [22, 443] for n in range(1, 6)}, zone=dc1)
    observe({**default, "127.70.0.3": [22]})
    now = timezone.now()
    for n, host in enumerate(Host.objects.order_by("pk")):
        # Three risks for 26 hosts: long runs of ties. Every fourth host never changed (NULL).
        host.risk = [Severity.HIGH, Severity.MEDIUM, Severity.HIGH][n % 3]
        host.violating_count = n % 2
        host.last_change_at = None if n % 4 == 0 else now - timedelta(hours=n % 5)
        host.save(update_fields=["risk", "violating_count", "last_change_at"])
    return dc1


def walk(client, url: str, params: dict) -> tuple[list, list]:
    """Every page forward from the first, then back from the last: the rows of each pass."""
    forward, pages, cursor = [], 0, None
    while True:
        response = client.get(url, {**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.content[:500]
        page = response.context["page"] if "page" in response.context else response.context["page_obj"]
        forward.extend(page.object_list)
        pages += 1
        assert pages < 100, "the pages never end"
        if not page.has_next:
            break
        assert len(page.object_list) == PER_PAGE
        for name, value in params.items():
            assert f"{name}={value}" in response.content.decode(), f"the links drop the filter {name}"
        cursor = page.next_cursor
    backward = list(page.object_list)
    while page.has_previous:
        response = client.get(url, {**params, "cursor": page.previous_cursor})
        assert response.status_code == 200
        page = response.context["page"] if "page" in response.context else response.context["page_obj"]
        assert len(page.object_list) == PER_PAGE
        backward[:0] = page.object_list
    return forward, backward


def whole(queryset) -> list:
    """The list in one query, in the keys' order: what the pages must add up to."""
    keys = paging.keys_of(queryset)
    return list(queryset.order_by(*[key.order() for key in keys]))


@pytest.fixture(autouse=True)
def small_pages(monkeypatch):
    for view in (HostListView, ServiceListView, ReviewQueueView, ChangeListView, AuditListView, RunListView):
        monkeypatch.setattr(view, "paginate_by", PER_PAGE)


# --- the lists' sorts, to the end and back ---------------------------------------------


@pytest.mark.sqlite
@pytest.mark.parametrize("sort", ["", *HOST_SORTS])
def test_every_host_sort_pages_every_row_once_in_order_and_back(as_viewer, fleet, sort):
    forward, backward = walk(as_viewer, reverse("host-list"), {"sort": sort} if sort else {})
    expected = whole(HostFilter({"sort": sort}, queryset=Host.objects.all()).qs)
    assert [host.pk for host in forward] == [host.pk for host in expected]
    assert len(expected) == Host.objects.count() == 26
    assert [host.pk for host in backward] == [host.pk for host in forward]


@pytest.mark.sqlite
def test_hosts_that_never_changed_come_last_when_sorted_by_change(as_viewer, fleet):
    forward, _ = walk(as_viewer, reverse("host-list"), {"sort": "changed"})
    stamps = [host.last_change_at for host in forward]
    assert None in stamps
    known = stamps[: stamps.index(None)]
    assert known == sorted(known, reverse=True) and set(stamps[len(known) :]) == {None}


@pytest.mark.sqlite
@pytest.mark.parametrize(
    "params",
    [{}, {"sort": "port"}, {"sort": "host"}, {"policy": "queue"}, {"q": "ssh"}, {"state": "all", "sort": "port"}],
)
def test_every_port_sort_pages_every_row_once_in_order_and_back(as_viewer, fleet, params):
    forward, backward = walk(as_viewer, reverse("port-list"), params)
    expected = whole(ServiceFilter(params, queryset=Service.objects.all()).qs)
    assert [service.pk for service in forward] == [service.pk for service in expected]
    assert len(forward) > PER_PAGE * 2
    assert [service.pk for service in backward] == [service.pk for service in forward]


@pytest.mark.sqlite
def test_the_changes_feed_pages_through_a_scan_that_stamped_every_change_at_once(as_viewer, fleet):
    forward, backward = walk(as_viewer, reverse("change-list"), {})
    assert [change.pk for change in forward] == list(
        Change.objects.order_by("-created_at", "-id").values_list("pk", flat=True)
    )
    assert len({change.created_at for change in forward}) < len(forward) / 4  # mostly ties
    assert [change.pk for change in backward] == [change.pk for change in forward]


@pytest.mark.sqlite
def test_the_review_queue_pages_and_keeps_its_filters(as_viewer, fleet):
    forward, backward = walk(as_viewer, reverse("review-queue"), {"zone": "dc1"})
    assert forward and {service.host.zone.name for service in forward} == {"dc1"}
    assert len(forward) == Service.objects.filter(host__zone__name="dc1", state="open").count()
    assert [service.pk for service in backward] == [service.pk for service in forward]


@pytest.mark.sqlite
def test_filters_are_kept_across_pages(as_viewer, fleet):
    forward, _ = walk(as_viewer, reverse("host-list"), {"zone": "default", "sort": "risk"})
    assert len(forward) == Host.objects.filter(zone__name="default").count() == 21
    assert {host.zone.name for host in forward} == {"default"}


@pytest.mark.sqlite
def test_runs_and_the_audit_log_page_by_cursor_too(as_viewer, fleet, admin):
    for n in range(9):
        audit.record(admin, "zone.update", fleet, summary=f"edit {n}")
    runs, back = walk(as_viewer, reverse("run-list"), {})
    assert [run.pk for run in runs] == list(ScanRun.objects.order_by("-created_at", "-id").values_list("pk", flat=True))
    assert back == runs
    entries, back = walk(as_viewer, reverse("audit-list"), {"action": "zone.update"})
    assert [entry.seq for entry in entries] == list(
        AuditEntry.objects.filter(action="zone.update").order_by("-seq").values_list("seq", flat=True)
    )
    assert len(entries) == 9 and back == entries


def test_a_deep_page_neither_counts_nor_skips_rows(as_viewer, fleet):
    first = as_viewer.get(reverse("host-list"), {"sort": "risk"}).context["page"]
    with CaptureQueriesContext(connection) as queries:
        response = as_viewer.get(reverse("host-list"), {"sort": "risk", "cursor": first.next_cursor})
    assert response.status_code == 200
    sql = " ".join(query["sql"].upper() for query in queries.captured_queries)
    assert "COUNT(" not in sql and "OFFSET" not in sql


# --- bad links -----------------------------------------------------------------------


def _forged(cursor: str, change) -> str:
    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    change(payload)
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _set(index, value):
    def change(payload):
        payload["v"][index] = value

    return change


FORGERIES = {
    "not base64": lambda cursor: "%%%not-a-cursor",
    "not json": lambda cursor: base64.urlsafe_b64encode(b"{nope").decode(),
    "a list": lambda cursor: base64.urlsafe_b64encode(b"[1, 2]").decode(),
    "another sort": lambda cursor: _forged(cursor, lambda payload: payload.update(o="00000000")),
    "too few values": lambda cursor: _forged(cursor, lambda payload: payload["v"].pop()),
    "risk as text": lambda cursor: _forged(cursor, _set(0, "high")),
    "risk as a float": lambda cursor: _forged(cursor, _set(0, 3.5)),
    "risk as a bool": lambda cursor: _forged(cursor, _set(0, True)),
    "risk out of range": lambda cursor: _forged(cursor, _set(0, 10**30)),
    "risk missing": lambda cursor: _forged(cursor, _set(0, None)),
    "address not an address": lambda cursor: _forged(cursor, _set(1, "999.1.1.1'; --")),
    "address with a NUL": lambda cursor: _forged(cursor, _set(1, "127.0.0.1\x00")),
    "address as a number": lambda cursor: _forged(cursor, _set(1, 2130706433)),
    "an extra field": lambda cursor: _forged(cursor, lambda payload: payload.update(x=1)),
    "a strange direction": lambda cursor: _forged(cursor, lambda payload: payload.update(b=7)),
    "huge": lambda cursor: "A" * 5000,
}


@pytest.fixture
def risk_cursor(as_viewer, fleet):
    return as_viewer.get(reverse("host-list"), {"sort": "risk"}).context["page"].next_cursor


@pytest.mark.sqlite
@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_or_garbled_page_link_is_a_clear_400(as_viewer, risk_cursor, forgery):
    response = as_viewer.get(reverse("host-list"), {"sort": "risk", "cursor": FORGERIES[forgery](risk_cursor)})
    assert response.status_code == 400
    assert BAD_LINK in response.content.decode()
    assert f'href="{reverse("host-list")}?sort=risk"' in response.content.decode()  # the first page, same filters


@pytest.mark.parametrize("forgery", FORGERIES)
def test_the_api_refuses_a_forged_cursor_with_a_400(viewer, fleet, forgery):
    api = api_client(viewer)
    following = api.get("/api/hosts/", {"sort": "risk", "page_size": 3}).json()["next"]
    cursor = parse_qs(urlsplit(following).query)["cursor"][0]
    response = api.get("/api/hosts/", {"sort": "risk", "cursor": FORGERIES[forgery](cursor)})
    assert response.status_code == 400
    assert BAD_LINK in response.json()["cursor"][0]


def test_a_cursor_of_one_sort_is_refused_by_another(as_viewer, risk_cursor):
    response = as_viewer.get(reverse("host-list"), {"sort": "open", "cursor": risk_cursor})
    assert response.status_code == 400 and BAD_LINK in response.content.decode()


def test_a_dated_cursor_checks_its_date(as_viewer, fleet):
    cursor = as_viewer.get(reverse("change-list")).context["page"].next_cursor
    for bad in ["2026-13-01T00:00:00+00:00", "2026-01-01T00:00:00", "yesterday", 20260101]:
        response = as_viewer.get(reverse("change-list"), {"cursor": _forged(cursor, _set(0, bad))})
        assert response.status_code == 400 and BAD_LINK in response.content.decode()


def test_an_old_page_number_bookmark_gets_the_first_page_and_a_note(as_viewer, fleet):
    response = as_viewer.get(reverse("host-list"), {"page": "7"})
    assert response.status_code == 200
    assert "Pages are no longer numbered" in response.content.decode()
    assert not response.context["page"].has_previous


# --- the API --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "params", "model"),
    [
        ("/api/hosts/", {"sort": "risk"}, Host),
        ("/api/hosts/", {"sort": "changed", "zone": "default"}, Host),
        ("/api/services/", {"policy": "queue"}, Service),
        ("/api/changes/", {}, Change),
        ("/api/runs/", {}, ScanRun),
    ],
)
def test_api_next_links_walk_the_whole_list_and_previous_links_walk_back(viewer, fleet, url, params, model):
    api = api_client(viewer)
    forward, pages = [], [api.get(url, {**params, "page_size": 3}).json()]
    while pages[-1]["next"]:
        assert len(pages) < 100
        for name, value in params.items():
            assert f"{name}={value}" in pages[-1]["next"]
        pages.append(api.get(pages[-1]["next"]).json())
    forward = [row["id"] for page in pages for row in page["results"]]
    assert len(forward) == len(set(forward)) == len(api.get(url, {**params, "page_size": 500}).json()["results"])
    assert [row["id"] for row in api.get(url, {**params, "page_size": 500}).json()["results"]] == forward
    backward, page = [], pages[-1]
    backward[:0] = [row["id"] for row in page["results"]]
    while page["previous"]:
        page = api.get(page["previous"]).json()
        backward[:0] = [row["id"] for row in page["results"]]
    assert backward == forward
    assert pages[0]["previous"] is None and "page" not in pages[0]


def test_the_api_refuses_page_numbers_other_than_the_first(viewer, fleet):
    api = api_client(viewer)
    assert api.get("/api/hosts/", {"page": "1"}).status_code == 200
    response = api.get("/api/hosts/", {"page": "2"})
    assert response.status_code == 400 and "next" in response.json()["page"][0]


# --- roles are the pages' own -----------------------------------------------------------


def test_a_cursor_opens_no_page_the_role_does_not(client, outsider, viewer, fleet, risk_cursor):
    client.force_login(outsider)
    assert client.get(reverse("host-list"), {"sort": "risk", "cursor": risk_cursor}).status_code == 403
    client.force_login(viewer)
    assert client.get(reverse("lockout-list"), {"cursor": "x"}).status_code == 403
    assert api_client(outsider).get("/api/hosts/", {"cursor": "x"}).status_code == 403


def test_notifications_page_by_cursor(as_viewer, fleet, monkeypatch):
    monkeypatch.setattr(NotificationListView, "paginate_by", 2)
    response = as_viewer.get(reverse("notification-list"), {"status": "sent"})
    assert response.status_code == 200
    response = as_viewer.get(reverse("notification-list"), {"status": "sent", "cursor": "garbage"})
    assert response.status_code == 400 and BAD_LINK in response.content.decode()


@pytest.mark.sqlite
def test_lockouts_page_by_cursor_over_their_grouped_rows(client, admin, monkeypatch):
    """Lockouts are grouped rows (one per username and address): the groups themselves are the key."""
    monkeypatch.setattr(LockoutListView, "paginate_by", PER_PAGE)
    for n in range(11):
        AccessAttempt.objects.create(
            username=f"user{n % 6}", ip_address=f"192.0.2.{n}", user_agent="", failures_since_start=99
        )
    client.force_login(admin)
    forward, backward = walk(client, reverse("lockout-list"), {})
    pairs = [(row["username"], row["ip_address"]) for row in forward]
    assert len(pairs) == len(set(pairs)) == 11
    assert backward == forward
