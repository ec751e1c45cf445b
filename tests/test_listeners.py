"""The host's own view: reports taken in (listeners.reports), reconciled with the scans (listeners.reconcile).

Both databases. Reports are real shapes (tests/fixtures/listeners); the
scans are the factories' (the real ones are in test_listener_lab.py).
"""

import json
import subprocess
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from alerts import messages
from alerts.choices import ChannelKind
from alerts.models import AlertRule, Channel, Notification
from inventory import baseline, binds
from inventory.choices import Decision, RuleScope
from inventory.models import PortRule
from inventory.ports import PortSet
from listeners import findings, intake, reconcile, reports, tasks
from listeners.choices import Finding, ReportSource
from listeners.models import HostReport, Listener, PortFinding
from listeners.parsing import parse
from portwatch import dashboard
from reach.models import VantagePoint
from scans.choices import ChangeKind
from scans.models import Change
from tallies import maintenance
from tests.factories import scan

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

A, B = "198.18.60.2", "198.18.60.3"
PROBED = {"tcp": PortSet.parse("1-10000")}


def ss(*rows: str) -> str:
    """An ss -Htulnp report of (address:port) TCP listeners."""
    return "\n".join(f'tcp LISTEN 0 128 {row} 0.0.0.0:* users:(("d",pid=7,fd=3))' for row in rows) + "\n"


def take(address, text, **kwargs):
    return reports.take(intake.find_host(address), parse(text), source=ReportSource.API, **kwargs)


def changes():
    return sorted(Change.objects.filter(kind__startswith="listener_").values_list("kind", "port"))


def test_a_report_replaces_the_listeners_and_records_what_changed_per_port():
    scan(None, {A: {22: "open"}})
    first = take(A, ss("0.0.0.0:22", "[::]:22", "127.0.0.1:5432"))
    assert first.changes == {ChangeKind.LISTENER_ADDED: 2}  # 22 once for 0.0.0.0 and [::]
    assert Listener.objects.count() == 3
    # The same again (a retried cron job): nothing changes.
    again = take(A, ss("0.0.0.0:22", "[::]:22", "127.0.0.1:5432"))
    assert again.changes == {} and again.summary == "no change"
    # 5432 now on every interface, 22 gone, 8080 new.
    take(A, ss("0.0.0.0:5432", "198.18.60.2:8080"))
    assert changes() == [
        ("listener_added", 22),
        ("listener_added", 5432),
        ("listener_added", 8080),
        ("listener_rebound", 5432),
        ("listener_removed", 22),
    ]
    rebound = Change.objects.get(kind=ChangeKind.LISTENER_REBOUND)
    assert rebound.before["addresses"] == ["127.0.0.1"] and rebound.before["scope"] == "loopback"
    assert rebound.after == {"addresses": ["0.0.0.0"], "scope": "all", "process": "d", "pid": 7, "user": ""}
    assert rebound.run is None and rebound.host.address == A


def test_an_older_report_is_kept_and_changes_nothing():
    scan(None, {A: {22: "open"}})
    now = timezone.now()
    take(A, ss("0.0.0.0:22"), now=now)
    late = reports.take(
        intake.find_host(A), intake.read(ss("0.0.0.0:9999").encode(), taken_at=now - timedelta(hours=1)),
        source=ReportSource.API,
    )  # fmt: skip
    assert not late.report.applied and "older than the host's newest report" in late.summary
    assert list(Listener.objects.values_list("port", flat=True)) == [22]
    assert HostReport.objects.count() == 2


def test_findings_from_the_report_and_every_vantage_points_view():
    office = VantagePoint.objects.create(name="office-lan")
    # The home sees 22 open, 8080 filtered (probed), 443 open (nothing listens: forwarded); 9000 never probed.
    scan(None, {A: {22: "open", 8080: "filtered", 443: "open"}}, probed=PROBED)
    scan(office, {A: {5432: "open"}}, probed=PROBED)
    take(A, ss("0.0.0.0:22", "198.18.60.2:8080", "127.0.0.1:5432", "127.0.0.1:6000", "0.0.0.0:20000"))
    view = reconcile.for_host(intake.find_host(A))
    found = {port.port: (port.finding, port.open_from) for port in view.ports}
    assert found == {
        22: (Finding.EXPOSED, ["default"]),
        443: (Finding.FORWARDED, ["default"]),
        5432: (Finding.FORWARDED, ["office-lan"]),  # loopback only, yet office-lan reaches it
        6000: (Finding.LOCAL, []),
        8080: (Finding.SHIELDED, []),
        20000: (Finding.UNSCANNED, []),  # outside every probed set: nothing concluded
    }
    assert view.counts()[Finding.SHIELDED] == 1
    assert_kept_findings(A)
    # A scan opens 8080 from home: the scan's changes judge the host again (exposed now).
    scan(None, {A: {22: "open", 8080: "open", 443: "open"}}, probed=PROBED)
    assert PortFinding.objects.get(port=8080).finding == Finding.EXPOSED
    assert_kept_findings(A)


def assert_kept_findings(address):
    """The kept findings (listeners.findings, SQL for many hosts) are the host page's (listeners.reconcile)."""
    host = intake.find_host(address)
    live = {
        (port.protocol, port.port): (port.finding, port.scope or "", bool(port.open_from))
        for port in reconcile.for_host(host).ports
    }
    kept = {
        (row.protocol, row.port): (row.finding, row.scope, row.reachable)
        for row in PortFinding.objects.filter(host=host)
    }
    assert kept == {key: value for key, value in live.items() if value[0]}
    findings.refresh()
    assert {
        (row.protocol, row.port): (row.finding, row.scope, row.reachable)
        for row in PortFinding.objects.filter(host=host)
    } == kept


def test_a_scan_that_only_probes_a_listeners_port_makes_it_shielded_at_the_next_sweep():
    scan(None, {A: {22: "open"}}, probed={"tcp": PortSet.parse("1-1000")})
    take(A, ss("0.0.0.0:22", "0.0.0.0:5000"))
    assert PortFinding.objects.get(port=5000).finding == Finding.UNSCANNED
    assert tasks.judge_scanned_hosts() >= 2  # the first sweep judges every host
    # A wider scan probes 5000 and finds it filtered: no port changed, so no change was recorded.
    scan(None, {A: {22: "open", 5000: "filtered"}}, probed=PROBED)
    assert PortFinding.objects.get(port=5000).finding == Finding.UNSCANNED
    tasks.judge_scanned_hosts()
    assert PortFinding.objects.get(port=5000).finding == Finding.SHIELDED
    assert_kept_findings(A)


def test_an_old_report_judges_nothing(settings):
    scan(None, {A: {22: "open"}})
    settings.LISTENER_REPORT_MAX_AGE_HOURS = 1
    take(A, ss("0.0.0.0:22"), now=timezone.now() - timedelta(hours=2))
    view = reconcile.for_host(intake.find_host(A))
    assert view.report is not None and not view.fresh and view.ports == []


def test_a_new_listener_on_all_interfaces_alerts_and_one_on_loopback_does_not():
    scan(None, {A: {22: "open"}})
    channel = Channel.objects.create(
        name="hook", kind=ChannelKind.WEBHOOK, target="http://198.18.0.9/", allow_private=True
    )
    channel.rules.set(AlertRule.objects.filter(name="Listener on all interfaces"))
    take(A, ss("127.0.0.1:5432"))
    assert not Notification.objects.exists()
    take(A, ss("127.0.0.1:5432", "0.0.0.0:9200"))
    notification = Notification.objects.get()
    assert list(notification.changes.values_list("kind", "port")) == [("listener_added", 9200)]
    # Rebound from loopback to every interface: alerts too; its removal does not.
    take(A, ss("0.0.0.0:5432", "0.0.0.0:9200"))
    take(A, ss("0.0.0.0:5432"))
    assert sorted(Notification.objects.values_list("changes__kind", "changes__port")) == [
        ("listener_added", 9200),
        ("listener_rebound", 5432),
    ]


def test_manage_py_imports_a_report_and_names_what_is_wrong(tmp_path):
    scan(None, {A: {22: "open"}})
    report = tmp_path / "ss.txt"
    report.write_text(ss("0.0.0.0:22"))
    out = StringIO()
    call_command("import_listeners", str(report), "--host", A, stdout=out)
    assert "Imported 1 listening socket(s) of 198.18.60.2 (ss): 1 listener added." in out.getvalue()
    with pytest.raises(CommandError, match=r"No host 198\.18\.60\.9 in the inventory"):
        call_command("import_listeners", str(report), "--host", "198.18.60.9")
    report.write_text("tcp ESTAB 0 0 198.18.62.1:22 198.18.62.2:5000\n")
    with pytest.raises(CommandError, match=r"line 1: ESTAB is not a listening socket.*Nothing was imported"):
        call_command("import_listeners", str(report), "--host", A)
    with pytest.raises(CommandError, match="--at 'yesterday' is not a time"):
        call_command("import_listeners", str(report), "--host", A, "--at", "yesterday")
    assert HostReport.objects.count() == 1


# --- the API and the pages -----------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script>'


def reporter_token() -> str:
    out = StringIO()
    call_command("listener_reporter", "cron-web", stdout=out)
    return out.getvalue().strip()


def reporter_client():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {reporter_token()}")
    return client


def test_a_reporters_token_posts_reports_and_reads_nothing(viewer):
    scan(None, {A: {22: "open"}})
    host = intake.find_host(A)
    client = reporter_client()
    body = ss("0.0.0.0:22").encode()
    response = client.post(f"/api/host-reports/?host={A}", data=body, content_type="text/plain")
    assert response.status_code == 201, response.content
    assert response.json()["changes"] == {"listener_added": 1} and response.json()["source"] == "api"
    # A JSON report (osquery) keeps its bytes whatever its content type says; a multipart upload too.
    osquery = b'[{"address": "0.0.0.0", "port": "22", "protocol": "6", "family": "2", "pid": "1"}]'
    response = client.post(f"/api/host-reports/?host={A}", data=osquery, content_type="application/json")
    assert response.status_code == 201 and response.json()["format"] == "osquery"
    upload = SimpleUploadedFile("ss.txt", ss("0.0.0.0:22", "0.0.0.0:80").encode())
    response = client.post("/api/host-reports/", {"host": A, "report": upload}, format="multipart")
    assert response.status_code == 201 and response.json()["summary"] == "1 listener added"
    for path in ("/api/host-reports/", f"/api/host-listeners/{host.public_id}/", "/api/hosts/", "/api/changes/"):
        assert client.get(path).status_code == 403, path
    assert client.post("/api/rules/", {}, format="json").status_code == 403
    assert client.post("/api/reviews/", {}, format="json").status_code == 403
    assert client.get(reverse("overview")).status_code in (302, 403)  # no session: the pages are not for it
    # A viewer reads them, and may not post.
    reader = APIClient()
    reader.force_authenticate(viewer)
    assert reader.get(f"/api/host-reports/?host={A}").json()["results"][0]["sockets"] == 2
    assert reader.get(f"/api/host-listeners/{host.public_id}/").json()["counts"]["exposed"] == 1
    refused = reader.post(f"/api/host-reports/?host={A}", data=body, content_type="text/plain")
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("query", "body", "field", "message"),
    [
        (f"host={A}", b"tcp ESTAB 0 0 198.18.62.1:22 198.18.62.2:5000\n", "report", "line 1: ESTAB is not a listening"),
        (f"host={A}", b"", "report", "Send the report as the body"),
        ("host=198.18.60.99", b"tcp LISTEN 0 1 0.0.0.0:22 0.0.0.0:*\n", "host", "No host 198.18.60.99"),
        ("host=not-an-address", b"tcp LISTEN 0 1 0.0.0.0:22 0.0.0.0:*\n", "host", "is not an IP address"),
        ("", b"tcp LISTEN 0 1 0.0.0.0:22 0.0.0.0:*\n", "host", "Name the host"),
        (f"host={A}&format=xml", b"x", "format", "One of"),
        (f"host={A}&taken_at=yesterday", b"x", "taken_at", "A time with its zone"),
    ],
)  # fmt: skip
def test_a_bad_report_through_the_api_names_what_is_wrong_and_writes_nothing(query, body, field, message):
    scan(None, {A: {22: "open"}})
    response = reporter_client().post(f"/api/host-reports/?{query}", data=body, content_type="text/plain")
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert not HostReport.objects.exists() and not Listener.objects.exists()


def test_the_upload_page_and_the_host_and_port_pages_escape_what_the_host_says(client, reviewer, viewer):
    scan(None, {A: {8080: "open"}}, probed=PROBED)
    client.force_login(reviewer)
    text = f'tcp LISTEN 0 128 0.0.0.0:8080 0.0.0.0:* users:(("{HOSTILE}",pid=9,fd=3))\n'
    response = client.post(reverse("listener-upload"), {"host": A, "text": text})
    host = intake.find_host(A)
    assert response.status_code == 302 and response.url == f"{host.get_absolute_url()}#listeners"
    client.force_login(viewer)
    for url in (host.get_absolute_url(), reverse("port-detail", args=[host.public_id, "tcp", 8080])):
        page = client.get(url).content.decode()
        assert HOSTILE not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page, url
        assert "listening and reachable" in page
    assert client.get(reverse("listener-upload")).status_code == 403  # viewers do not upload
    # A bad report: the page says why, nothing is written.
    client.force_login(reviewer)
    response = client.post(reverse("listener-upload"), {"host": A, "text": "<html>hello</html>"})
    assert response.status_code == 400
    assert (
        "not a report PortWatch reads" in response.content.decode() and "<html>hello" not in response.content.decode()
    )
    response = client.post(reverse("listener-upload"), {"host": A})
    assert "Give the report as a file or as pasted text" in response.content.decode()
    assert HostReport.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_readmes_cron_line_posts_this_machines_real_ss_report(live_server):
    """The README's cron line, as written but for its address, token and host: real ss piped to real curl."""
    scan(None, {"127.0.0.1": {22: "open"}})
    token = reporter_token()
    line = (
        f'ss -Htulnp | curl -fsS --max-time 30 -H "Authorization: Token {token}" --data-binary @- '
        f'"{live_server.url}/api/host-reports/?host=127.0.0.1"'
    )
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["format"] == "ss" and answer["applied"] and answer["sockets"] >= 1
    assert Listener.objects.filter(host__address="127.0.0.1").count() == answer["sockets"]


def test_the_lists_filter_by_finding_and_the_overview_counts_the_fresh_ones(client, viewer, settings):
    scan(None, {A: {22: "open", 8080: "filtered"}, B: {22: "open"}}, probed=PROBED)
    take(A, ss("0.0.0.0:22", "0.0.0.0:8080"))
    take(B, ss("0.0.0.0:22"), now=timezone.now() - timedelta(hours=30))  # older than the 24 hours that count
    assert dashboard.finding_counts(timezone.now()) == {Finding.EXPOSED: 1, Finding.SHIELDED: 1}
    assert maintenance.differences() == []  # the kept counts are a recount's
    client.force_login(viewer)
    hosts = client.get(reverse("host-list"), {"finding": "shielded"}).content.decode()
    assert A in hosts and B not in hosts
    ports = client.get(reverse("port-list"), {"finding": "exposed"}).content.decode()
    assert f"{A}" in ports and B not in ports
    overview = client.get(reverse("overview")).content.decode()
    assert 'data-figure="finding-shielded">1<' in overview
    refused = client.get(reverse("host-list"), {"finding": "nonsense"})  # as every bad filter: said, nothing listed
    assert refused.context["filter"].errors and not refused.context["page"].object_list


# --- where a port may listen (PortRule.listen_on) -----------------------------------------------------


def port_rule(ports, listen_on, **fields):
    fields.setdefault("scope", RuleScope.GLOBAL)
    return PortRule.objects.create(
        protocol="tcp", port_start=ports[0], port_end=ports[1], decision=Decision.APPROVED,
        justification="databases on loopback", listen_on=listen_on, **fields,
    )  # fmt: skip


def test_a_listener_where_a_rule_forbids_breaks_it_until_the_rule_or_the_listener_changes(client, viewer):
    scan(None, {A: {22: "open"}, B: {22: "open"}}, probed=PROBED)
    rule = port_rule((5432, 5432), "loopback, 198.18.60.0/24")
    take(A, ss("0.0.0.0:5432", "0.0.0.0:22"))  # every interface: more than the rule allows
    take(B, ss("198.18.60.3:5432", "127.0.0.1:5432"))  # loopback and its network: allowed
    broken = {(row.host.address, row.port): row.bind_rule for row in PortFinding.objects.exclude(bind_rule=None)}
    assert broken == {(A, 5432): rule}
    view = reconcile.for_host(intake.find_host(A))
    assert {port.port: port.bind_rule for port in view.ports if port.bind_rule} == {5432: rule}
    # The rule narrowed (loopback only): B's address-bound listener breaks it too, at once (a rule's save).
    rule.listen_on = "loopback"
    rule.save()
    assert set(PortFinding.objects.exclude(bind_rule=None).values_list("host__address", "port")) == {
        (A, 5432),
        (B, 5432),
    }
    # A more specific rule saying nothing about listening leaves the wider requirement in force.
    port_rule((5432, 5432), "", scope=RuleScope.HOST, host=intake.find_host(B))
    assert PortFinding.objects.exclude(bind_rule=None).count() == 2
    # A listens where it may now: its next report says so.
    take(A, ss("127.0.0.1:5432", "0.0.0.0:22"))
    client.force_login(viewer)
    listed = client.get(reverse("host-list"), {"finding": "bind_broken"}).content.decode()
    assert B in listed and A not in listed
    page = client.get(intake.find_host(B).get_absolute_url()).content.decode()
    assert "breaks a rule: may listen on loopback" in page
    body = APIClient()
    body.force_authenticate(viewer)
    ports = body.get(f"/api/host-listeners/{intake.find_host(B).public_id}/").json()["ports"]
    assert [port["bind_rule"] for port in ports if port["port"] == 5432] == [
        {"id": str(rule.public_id), "listen_on": "loopback"}
    ]
    # The rule removed: nothing breaks.
    rule.delete()
    assert not PortFinding.objects.exclude(bind_rule=None).exists()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("loopback, 198.19.0.0/16", None),
        ("Loopback;fd00::/64", None),
        ("198.19.0.300/16", "is neither “loopback” nor a network"),
        ("everywhere", "is neither “loopback” nor a network"),
    ],
)
def test_where_a_rule_lets_ports_listen_is_checked(text, error):
    if error is None:
        assert binds.parse(text)
    else:
        with pytest.raises(binds.BindSpecError, match=error):
            binds.parse(text)


def test_bind_checks():
    assert binds.allows("", "*") and binds.allows("", "0.0.0.0")
    assert (
        not binds.allows("loopback", "0.0.0.0")
        and not binds.allows("loopback", "*")
        and not binds.allows("loopback", "::")
    )
    assert (
        binds.allows("loopback", "127.0.0.53")
        and binds.allows("loopback", "::1")
        and binds.allows("loopback", "::ffff:127.0.0.1")
    )
    assert binds.allows("198.19.0.0/16", "198.19.2.3") and not binds.allows("198.19.0.0/16", "198.18.0.1")
    assert not binds.allows("fd00::/64", "198.19.2.3") and binds.allows("fd00::/64", "fd00::5")


def test_the_baseline_carries_where_a_rule_lets_ports_listen():
    rule = port_rule((5432, 5432), "loopback, 198.19.0.0/16")
    text = baseline.export_text()
    assert "listen_on: loopback, 198.19.0.0/16" in text
    rule.delete()
    baseline.import_text(text)
    assert PortRule.objects.get().listen_on == "loopback, 198.19.0.0/16"
    with pytest.raises(baseline.BaselineError, match="'listen_on': 'the office' is neither"):
        baseline.import_text(text.replace("loopback, 198.19.0.0/16", "the office"))
    assert PortRule.objects.get().listen_on == "loopback, 198.19.0.0/16"


def test_a_listener_alert_names_the_process_escaped_in_every_channel_format():
    scan(None, {A: {22: "open"}})
    channel = Channel.objects.create(
        name="hook", kind=ChannelKind.WEBHOOK, target="http://198.18.0.9/", allow_private=True
    )
    channel.rules.set(AlertRule.objects.filter(name="Listener on all interfaces"))
    hostile = '<script>alert("x")</script> @everyone'
    take(A, f'tcp LISTEN 0 128 0.0.0.0:9200 0.0.0.0:* users:(("{hostile}",pid=9,fd=3))\n')
    message = messages.build(Notification.objects.get())
    assert message.lines[0].service == f"{hostile} on 0.0.0.0"
    html = message.render("email_body.html")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "@everyone" not in message.render("chat.md")


def test_two_judgings_of_a_host_at_once_do_not_collide():
    """Each deletes the host's findings and inserts its own; the later insert meets the earlier's rows."""
    scan(None, {A: {22: "open"}})
    take(A, ss("0.0.0.0:22", "127.0.0.1:5432"))
    host = intake.find_host(A)
    statement = findings._SQL.format(hosts=f"h.id IN ({host.pk})", covered="FALSE", **findings._VALUES)
    with connection.cursor() as cursor:
        cursor.execute(statement)  # as a second judging that deleted before the first inserted
    assert PortFinding.objects.filter(host=host).count() == 2
    assert_kept_findings(A)


def test_an_impossible_time_is_a_400_and_a_clear_command_error(tmp_path):
    scan(None, {A: {22: "open"}})
    response = reporter_client().post(
        f"/api/host-reports/?host={A}&taken_at=2026-13-01T00:00:00Z", data=ss("0.0.0.0:22").encode(),
        content_type="text/plain",
    )  # fmt: skip
    assert response.status_code == 400 and "A time with its zone" in response.json()["taken_at"][0]
    report = tmp_path / "ss.txt"
    report.write_text(ss("0.0.0.0:22"))
    with pytest.raises(CommandError, match="is not a time with a zone"):
        call_command("import_listeners", str(report), "--host", A, "--at", "2026-13-01T00:00:00+00:00")
    assert not HostReport.objects.exists()
