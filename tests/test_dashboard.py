"""The overview's figures and chart, the changes feed, and the operator endpoints (metrics, health)."""

import html
import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from inventory import policy, review
from inventory.models import Host, HostTag, InventorySnapshot, PortRule, Service, Tag, Zone
from inventory.snapshots import inventory_counts, prune_snapshots
from inventory.tasks import take_snapshot
from portwatch import dashboard
from portwatch.celery import app
from scans.models import Change, ScanProfile, ScanRun, ScanTarget, WorkerHeartbeat
from tests.factories import observe
from tests.stack import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet():
    """Three hosts; 6379 rejected by a rule (a violation), the rest unreviewed; then 443 opens and 22 closes."""
    dc1 = Zone.objects.create(name="dc1")
    observe({"127.70.0.1": [22, 6379], "127.70.0.2": [(80, "http", "<script>alert(1)</script>")]})
    observe({"127.70.1.1": [22]}, zone=dc1)
    rule = PortRule.objects.create(
        scope="global", protocol="tcp", port_start=6379, port_end=6379, decision="rejected", justification="no redis"
    )
    policy.rule_changed(rule)
    policy.evaluate_hosts(Host.objects.all())
    observe({"127.70.0.1": [443, 6379], "127.70.0.2": [(80, "http", "<script>alert(1)</script>")]})
    tag = Tag.objects.create(name="web")
    HostTag.objects.create(host=Host.objects.get(address="127.70.0.2"), tag=tag)
    return dc1


CHART_DATA = re.compile(r'<div id="chart-data" hidden data-series="([^"]*)"></div>')


def chart_data(response) -> dict:
    return json.loads(html.unescape(CHART_DATA.search(response.content.decode()).group(1)))


def live_panel(client, **query):
    response = client.get(reverse("overview"), query, headers={"HX-Request": "true"})
    assert response.status_code == 200
    return response


def test_overview_figures_come_from_the_inventory(as_viewer, fleet):
    response = as_viewer.get(reverse("overview"))
    assert response.status_code == 200
    counts = response.context["counts"]
    # 127.70.0.1: 443 + 6379, 127.70.0.2: 80, 127.70.1.1: 22.
    assert counts == {"hosts": 3, "unreachable": 0, "open_ports": 4, "unreviewed": 3, "violating": 1}
    assert counts["open_ports"] == Service.objects.filter(state="open").count()
    # Every observe() wrote changes today: discovered hosts, opened ports, then 443 opened and 22 closed.
    assert response.context["change_counts"]["day"] == Change.objects.count() > 0
    backlog = response.context["backlog"]["buckets"]
    assert [bucket["count"] for bucket in backlog] == [3, 0, 0, 0]
    # Hostile product text from a scanned host is escaped on the page.
    assert b"<script>alert(1)</script>" not in response.content
    # The chart is drawn by a vendored script, not a CDN, and no inline script runs.
    assert b"vendor/chart-4.6.1.umd.min.js" in response.content
    assert b"<script>" not in response.content


def _overview_queries(client) -> tuple[dict, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("overview"), headers={"HX-Request": "true"})
    assert response.status_code == 200
    return response.context["counts"], len(queries)


def test_viewers_within_the_cache_window_share_one_reading_of_the_figures(as_viewer, fleet, settings):
    """OVERVIEW_CACHE_SECONDS: the second poll reads no figures (only its session and role), then the window ends."""
    from django.core.cache import cache

    settings.OVERVIEW_CACHE_SECONDS = 30
    cache.delete_many([f"overview:{key}" for key in dashboard.CHART_RANGES])
    first, first_queries = _overview_queries(as_viewer)
    observe({"127.70.9.9": [8080]})
    shared, shared_queries = _overview_queries(as_viewer)
    assert shared == first and shared_queries < first_queries - 5
    cache.delete_many([f"overview:{key}" for key in dashboard.CHART_RANGES])  # the window ends
    fresh, _ = _overview_queries(as_viewer)
    assert fresh["hosts"] == first["hosts"] + 1 and fresh["open_ports"] == first["open_ports"] + 1
    page = as_viewer.get(reverse("overview")).content.decode()
    assert "shared by everyone looking within 30 s" in page


def test_the_overview_reads_its_own_figures_when_the_cache_is_down(as_viewer, fleet, settings, caplog):
    """The cache is a speed-up: with Redis unreachable the overview still answers, with live figures."""
    settings.OVERVIEW_CACHE_SECONDS = 30
    # Django resets its cache handlers when CACHES changes (django.test.signals).
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    counts, _ = _overview_queries(as_viewer)
    assert counts["hosts"] == Host.objects.count() == 3
    assert "cache unavailable" in caplog.text


def test_backlog_buckets_ports_by_how_long_they_waited(as_viewer, fleet):
    now = timezone.now()
    Service.objects.filter(port=443).update(first_seen=now - timedelta(days=3))
    Service.objects.filter(port=80).update(first_seen=now - timedelta(days=45))
    backlog = dashboard.review_backlog(now)
    assert [bucket["count"] for bucket in backlog["buckets"]] == [1, 1, 0, 1]
    assert backlog["oldest"] == now - timedelta(days=45)


@pytest.fixture
def as_reviewer(client, reviewer):
    client.force_login(reviewer)
    return client


def test_the_live_panel_carries_the_chart_series_and_follows_a_review(as_reviewer, fleet):
    earlier = timezone.now() - timedelta(hours=2)
    take_snapshot.apply()  # the beat task, run in process
    InventorySnapshot.objects.update(taken_at=earlier)
    response = live_panel(as_reviewer)
    # The live panel alone: no page chrome, no canvas (it stays on the page while the panel is swapped).
    assert b"ports-chart" not in response.content and b"<nav" not in response.content
    series = chart_data(response)
    assert len(series["t"]) == 2  # the snapshot, then now
    assert series["open"] == [4, 4] and series["unreviewed"] == [3, 3] and series["violating"] == [1, 1]

    # Approving the unreviewed 443 shows in the next poll without waiting for a snapshot.
    service = Service.objects.get(port=443)
    decision = {"token": review.token_for(service), "decision": "approved", "scope": "host", "justification": "tls"}
    assert as_reviewer.post(reverse("review-decide"), decision).status_code == 302
    series = chart_data(live_panel(as_reviewer))
    assert series["unreviewed"] == [3, 2]


def test_chart_ranges_and_snapshot_pruning(as_viewer, fleet):
    now = timezone.now()
    for days in (0.5, 3, 20, 400):
        InventorySnapshot.objects.create(
            taken_at=now - timedelta(days=days), hosts=1, unreachable=0, open_ports=1, unreviewed=0, violating=0
        )
    assert len(dashboard.chart_series("1", now, inventory_counts())["t"]) == 2
    assert len(dashboard.chart_series("7", now, inventory_counts())["t"]) == 3
    assert len(dashboard.chart_series("30", now, inventory_counts())["t"]) == 4
    # An unknown range falls back to the default instead of failing the poll.
    assert live_panel(as_viewer, range="999").context["chart_range"] == dashboard.CHART_DEFAULT_RANGE
    assert prune_snapshots(timedelta(days=366), now) == 1


def test_the_overview_lists_the_violating_ports_themselves(as_viewer, fleet):
    page = as_viewer.get("/").content.decode()
    port = Service.objects.get(host__address="127.70.0.1", port=6379)
    assert f'href="{port.get_absolute_url()}?decide=1">127.70.0.1 6379/tcp</a>' in page
    assert "no redis" in page and "all 1 →" in page


def test_the_chart_fits_the_history_it_has_and_says_when_there_is_not_enough(as_viewer, fleet):
    now = timezone.now()
    young = dashboard.chart_series("7", now, inventory_counts())
    assert len(young["t"]) == 1 and young["enough"] is False  # the live point alone
    assert young["to"] - young["from"] == dashboard.CHART_MIN_SPAN.total_seconds() * 1000
    for minutes in (50, 20):
        InventorySnapshot.objects.create(
            taken_at=now - timedelta(minutes=minutes), hosts=1, unreachable=0, open_ports=1, unreviewed=0, violating=0
        )
    series = dashboard.chart_series("7", now, inventory_counts())
    # Not 7 empty days with a sliver at the right: the axis starts at the first point.
    assert series["enough"] is True and series["from"] == series["t"][0]
    assert series["t"][0] == int((now - timedelta(minutes=50)).timestamp() * 1000)
    # The last hour alone.
    assert len(dashboard.chart_series("1h", now, inventory_counts())["t"]) == 3
    page = as_viewer.get("/?range=1h").content.decode()
    assert "<strong>1 h</strong>" in page and 'href="?range=7">7 d</a>' in page
    assert "Not enough history yet" in page and 'data-time-zone="UTC"' in page


def test_freshness_counts_hosts_not_scanned_within_their_schedule(as_viewer, fleet):
    now = timezone.now()
    quick = ScanProfile.objects.get(slug="quick")
    ScanTarget.objects.create(
        name="default zone hourly",
        zone=Zone.default(),
        targets="127.70.0.0/24",
        profile=quick,
        schedule_kind="interval",
        schedule_interval=60,
        next_run_at=now + timedelta(minutes=30),
    )
    Host.objects.filter(address="127.70.0.2").update(last_scanned=now - timedelta(hours=3))
    _, fresh = dashboard.host_figures(now)
    assert (fresh.hosts_scheduled, fresh.hosts_overdue, fresh.hosts_unscheduled) == (2, 1, 1)
    assert fresh.coverage_percent == 50.0
    assert fresh.late_targets == []
    # The figure links to the hosts it counts.
    overdue = as_viewer.get("/hosts/?scanned=overdue").content.decode()
    assert "127.70.0.2" in overdue and "127.70.0.1<" not in overdue and "127.70.1." not in overdue

    # A daily cron target in dc1; its slot was missed long ago: the scheduler is behind.
    late = ScanTarget.objects.create(
        name="dc1 nightly",
        zone=Zone.objects.get(name="dc1"),
        targets="127.70.1.0/24",
        profile=quick,
        schedule_kind="cron",
        schedule_cron="0 2 * * *",
        next_run_at=now - timedelta(hours=1),
    )
    _, fresh = dashboard.host_figures(now)
    assert (fresh.hosts_scheduled, fresh.hosts_overdue, fresh.hosts_unscheduled) == (3, 1, 0)
    assert fresh.late_targets == [late]
    page = live_panel(as_viewer).content.decode()
    assert "The scheduler is behind" in page and "dc1 nightly" in page
    assert "1</span> of 3 scheduled hosts not scanned within their schedule" in page
    assert 'href="/hosts/?scanned=overdue"' in page


# --- the changes feed ------------------------------------------------------------


def feed(client, **query):
    response = client.get(reverse("change-list"), query)
    assert response.status_code == 200
    return response


def kinds_and_ports(response):
    return sorted((change.kind, change.port) for change in response.context["page"].object_list)


def test_changes_feed_filters(as_viewer, fleet):
    assert kinds_and_ports(feed(as_viewer, kind="port_closed")) == [("port_closed", 22)]
    assert kinds_and_ports(feed(as_viewer, kind=["port_closed", "host_discovered"], zone="dc1")) == [
        ("host_discovered", None)
    ]
    assert kinds_and_ports(feed(as_viewer, policy="rejected")) == [("port_opened", 6379)]
    # Redis (6379) carries a high risk by the default risk rules; host changes have no risk.
    assert ("port_opened", 6379) in kinds_and_ports(feed(as_viewer, risk="3"))
    assert all(port is not None for _, port in kinds_and_ports(feed(as_viewer, risk="1")))
    assert kinds_and_ports(feed(as_viewer, tag="web")) == [("host_discovered", None), ("port_opened", 80)]
    assert len(feed(as_viewer, within="1").context["page"].object_list) == Change.objects.count()
    Change.objects.filter(kind="port_closed").update(created_at=timezone.now() - timedelta(days=10))
    assert ("port_closed", 22) not in kinds_and_ports(feed(as_viewer, within="7"))
    since = (timezone.now() - timedelta(days=11)).isoformat()
    until = (timezone.now() - timedelta(days=9)).isoformat()
    assert kinds_and_ports(feed(as_viewer, since=since, until=until)) == [("port_closed", 22)]


@pytest.mark.parametrize(
    "query", [{"kind": "port_exploded"}, {"since": "yesterday-ish"}, {"risk": "99"}, {"zone": "nowhere"}]
)
def test_changes_feed_bad_filters_say_so_and_show_nothing(as_viewer, fleet, query):
    response = feed(as_viewer, **query)
    assert response.context["page"].object_list == []
    assert 'class="error"' in response.content.decode()


def test_each_change_links_to_its_host_port_and_run(as_viewer, fleet):
    change = Change.objects.get(kind="port_closed")
    page = feed(as_viewer, kind="port_closed").content.decode()
    assert change.host.get_absolute_url() in page
    assert reverse("port-detail", args=[change.host.public_id, "tcp", 22]) in page
    assert change.run.get_absolute_url() in page


def test_changes_feed_export(as_viewer, fleet):
    response = as_viewer.get(reverse("change-list"), {"format": "json", "kind": "port_closed"})
    rows = json.loads(b"".join(response.streaming_content))
    assert [(row["kind"], row["address"], row["port"]) for row in rows] == [("port_closed", "127.70.0.1", 22)]


# --- metrics and health -------------------------------------------------------------


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in the exposition")


def test_metrics_for_a_prometheus_scrape_with_a_token(client, viewer, fleet):
    token = Token.objects.create(user=viewer)
    response = client.get(reverse("metrics"), headers={"Authorization": f"Token {token.key}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert metric(text, "portwatch_ports_open") == 4
    assert metric(text, "portwatch_ports_unreviewed") == 3
    assert metric(text, "portwatch_ports_violating") == 1
    assert metric(text, 'portwatch_hosts{status="up"}') == 3
    assert metric(text, 'portwatch_changes_last_24h{kind="port_closed"}') == 1
    assert metric(text, 'portwatch_queue_workers{queue="alerts"}') == 0
    assert metric(text, "portwatch_broker_up") == 1
    assert 'portwatch_queue_depth{queue="default"}' in text
    assert metric(text, 'portwatch_notifications{status="failed"}') == 0


def test_metrics_and_health_need_a_user_with_a_role(client, outsider, fleet):
    for name in ("metrics", "health"):
        assert client.get(reverse(name)).status_code in (401, 403)
        assert client.get(reverse(name), headers={"Authorization": "Token not-a-token"}).status_code in (401, 403)
        token = Token.objects.create(user=outsider) if not Token.objects.filter(user=outsider).exists() else None
        key = token.key if token else Token.objects.get(user=outsider).key
        assert client.get(reverse(name), headers={"Authorization": f"Token {key}"}).status_code == 403


def test_health_without_workers_names_what_is_missing(as_viewer):
    response = as_viewer.get(reverse("health"))
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "failing"
    assert {name: check["status"] for name, check in report["checks"].items()} == {
        "database": "ok",
        "broker": "ok",
        "workers": "failing",
        "nmap": "ok",
    }
    assert "no running worker consumes alerts, default" in report["checks"]["workers"]["detail"]
    assert "run_worker --alerts" in report["checks"]["workers"]["detail"]


def test_health_reports_a_broker_that_does_not_answer(as_viewer):
    url = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    try:
        report = as_viewer.get(reverse("health")).json()
    finally:
        app.conf.broker_url = url
    assert report["checks"]["broker"]["status"] == "failing"
    assert "Connection refused" in report["checks"]["broker"]["detail"]
    assert report["status"] == "failing"


@pytest.mark.django_db(transaction=True)
def test_real_workers_report_themselves_and_health_passes(as_viewer, tmp_path):
    from tests.processes import WorkerProcess

    scans = WorkerProcess(tmp_path / "central.log")
    alerts = WorkerProcess(tmp_path / "alerts.log", "--alerts")
    try:
        assert {worker.name.split("@")[0] for worker in WorkerHeartbeat.objects.all()} == {"central", "alerts"}
        response = as_viewer.get(reverse("health"))
        assert response.status_code == 200, response.json()
        assert response.json()["checks"]["workers"]["detail"].startswith("2 workers")
        text = as_viewer.get(reverse("metrics")).content.decode()
        assert metric(text, 'portwatch_queue_workers{queue="alerts"}') == 1
        assert metric(text, 'portwatch_queue_workers{queue="default"}') == 1
    finally:
        scans.stop()
        alerts.stop()
    # A clean stop removes the worker's row: "no worker", not a stale one.
    assert not WorkerHeartbeat.objects.filter(name__startswith="central@").exists()


def test_runs_page_shows_progress_and_errors_and_polls_only_while_a_run_is_going(as_viewer):
    zone = Zone.default()
    ScanRun.objects.create(
        zone=zone, trigger="manual", targets="127.70.0.1", status="failed", error="<b>nmap exited with status 1</b>"
    )
    page = as_viewer.get(reverse("run-list")).content.decode()
    assert "&lt;b&gt;nmap exited with status 1&lt;/b&gt;" in page and "<b>nmap" not in page
    assert "hx-get" not in page.split('id="runs"')[1].split(">")[0]
    ScanRun.objects.create(
        zone=zone, trigger="manual", targets="127.70.0.0/30", status="running", hosts_total=4, hosts_done=1
    )
    page = as_viewer.get(reverse("run-list")).content.decode()
    assert 'hx-trigger="every 3s"' in page and '<progress max="100" value="25">' in page


def test_a_run_that_ends_adds_a_chart_point_at_most_once_a_minute(fleet):
    from scans import services

    def finished_run():
        run = ScanRun.objects.create(zone=Zone.default(), trigger="manual", targets="127.70.0.1", status="running")
        run.chunks.create(index=0, status="succeeded")
        return services.finalize_run(run.pk)

    assert finished_run().status == "succeeded"
    assert list(InventorySnapshot.objects.values_list("open_ports", "unreviewed", "violating")) == [(4, 3, 1)]
    finished_run()
    assert InventorySnapshot.objects.count() == 1
    InventorySnapshot.objects.update(taken_at=timezone.now() - timedelta(minutes=2))
    finished_run()
    assert InventorySnapshot.objects.count() == 2


def _poll(client, query=None) -> str:
    response = client.get(reverse("overview"), query or {}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def shared_overview(settings):
    from django.core.cache import cache

    settings.OVERVIEW_CACHE_SECONDS = 30
    cache.clear()
    yield
    cache.clear()


def test_viewers_within_a_reading_share_its_rendered_panels_and_see_what_they_would_have_rendered(
    fleet, settings, shared_overview, viewer, reviewer, admin
):
    """The poll's HTML is rendered once per reading, time zone, role and query, and is what each would have got."""
    from unittest import mock

    from django.test import Client

    from accounts import time_zones
    from portwatch import overview_fragments

    def client_of(user, zone=None):
        client = Client()
        client.force_login(user)
        if zone:
            session = client.session
            session[time_zones.SESSION_KEY] = zone
            session.save()
        return client

    other_viewer = type(viewer).objects.create(username="vera-viewer")
    other_viewer.groups.set(viewer.groups.all())
    renders = mock.Mock(wraps=overview_fragments.render_to_string)
    with mock.patch.object(overview_fragments, "render_to_string", renders):
        first = _poll(client_of(viewer))
        assert renders.call_count == 2  # the live panel and the recent lists
        assert _poll(client_of(other_viewer)) == first  # the same reading, zone and role: shared
        assert renders.call_count == 2
        paris = _poll(client_of(viewer, "Europe/Paris"))  # another zone: its own times
        admins = _poll(client_of(admin))  # another role
        made_up = _poll(client_of(viewer), {"range": "7", "utm": "x"})  # not the overview's own query
        assert renders.call_count == 8
        _poll(client_of(viewer), {"range": "7", "utm": "y"})
        assert renders.call_count == 10  # a made-up query is rendered for itself, never kept
    assert paris != first and _strip_times(admins) == _strip_times(first) and made_up
    # Nothing of the person is in what is shared: no name, no CSRF token.
    for text in (first, paris):
        assert "victor-viewer" not in text and "csrfmiddlewaretoken" not in text
    # What the cache served is what rendering without it gives for the same figures.
    settings.OVERVIEW_CACHE_SECONDS = 0
    uncached = _poll(client_of(other_viewer))
    assert _strip_times(uncached) == _strip_times(first)


def _strip_times(page: str) -> str:
    """The panels without what moves with the clock (the reading's time, "N minutes ago" and "now",
    which naturaltime writes for less than a second, the chart's span) or says it is shared."""
    page = re.sub(r"\d\d:\d\d:\d\d", "T", page).replace(", shared by everyone looking within 30 s", "")
    page = re.sub(r'data-series="[^"]*"', "", page)
    return re.sub(r">[^<]*\b(?:ago|now)\b[^<]*<", "><", page)
