"""The risk table: built-in classification, shown where ports appear, edited by admins."""

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.choices import Severity
from inventory.models import AuditEntry, Host, RiskRule, Service, Zone
from inventory.risk import RiskTable

pytestmark = pytest.mark.django_db


def service(port: int, name: str = "") -> Service:
    now = timezone.now()
    host, _ = Host.objects.get_or_create(
        zone=Zone.default(),
        address="127.0.0.1",
        defaults={"first_seen": now, "last_seen": now, "last_scanned": now},
    )
    return Service.objects.create(
        host=host, protocol="tcp", port=port, state="open", name=name, first_seen=now, last_seen=now, last_changed=now
    )


@pytest.mark.parametrize(
    ("protocol", "port", "name", "label", "severity"),
    [
        ("tcp", 6379, "", "Redis", Severity.HIGH),
        ("tcp", 7000, "redis", "Redis", Severity.HIGH),  # moved, still Redis
        ("tcp", 2375, "", "Docker API without TLS", Severity.CRITICAL),
        ("tcp", 23, "telnet", "Telnet", Severity.CRITICAL),
        ("udp", 161, "snmp", "SNMP", Severity.HIGH),
        ("tcp", 9229, "", "Node.js inspector", Severity.CRITICAL),
        ("tcp", 443, "https", None, None),
        ("udp", 6379, "", None, None),
    ],
)
def test_built_in_classification(protocol, port, name, label, severity):
    rule = RiskTable.load().for_port(protocol, port, name)
    assert (rule.label, rule.severity) == (label, severity) if label else rule is None


def test_the_host_page_shows_each_ports_risk(as_viewer):
    service(6379)
    service(7000, "redis")
    service(443, "https")
    host = Host.objects.get()
    page = as_viewer.get(host.get_absolute_url())
    assert page.content.count(b'class="risk risk-high"') == 2


def test_the_risk_table_is_read_once_per_page(as_viewer, django_assert_max_num_queries):
    for port in (21, 22, 23, 3306, 5432, 6379, 9200, 27017):
        service(port)
    host = Host.objects.get()
    as_viewer.get(host.get_absolute_url())  # warm the session
    # A fixed number, whatever the ports: 12, and since vantage points the
    # host's line per vantage point (vantage points, live workers, its views),
    # and since host reports its own view's newest report (none here: one query),
    # and since the page says whether the host is muted, the active mutes (one query).
    with django_assert_max_num_queries(16):
        as_viewer.get(host.get_absolute_url())


def test_an_admin_lowers_a_severity_and_it_is_audited(as_admin):
    redis = RiskRule.objects.get(port=6379)
    data = {"label": "Redis (internal)", "category": "cache", "severity": Severity.MEDIUM}
    response = as_admin.post(reverse("risk-edit", args=[redis.pk]), {**data, "port": "1", "protocol": "udp"})
    assert response.status_code == 302
    redis.refresh_from_db()
    # What a built-in rule matches is not editable (disabled fields ignore the post).
    assert (redis.port, redis.protocol, redis.severity, redis.label) == (
        6379,
        "tcp",
        Severity.MEDIUM,
        "Redis (internal)",
    )
    entry = AuditEntry.objects.get(action="risk.update")
    assert (entry.before["severity"], entry.after["severity"]) == (Severity.HIGH, Severity.MEDIUM)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"port": "0"}, "port", "greater than or equal to 1"),
        ({"port": "65536"}, "port", "less than or equal to 65535"),
        ({"port": "22"}, None, "already exists"),
        ({"port": "", "service_name": ""}, None, "Give a port, a service name, or both."),
        ({"severity": "9"}, "severity", "Select a valid choice"),
        ({"category": "spooky"}, "category", "Select a valid choice"),
    ],
)
def test_bad_rules_are_refused_and_write_nothing(as_admin, data, field, message):
    count = RiskRule.objects.count()
    form = {"protocol": "tcp", "port": "4444", "service_name": "", "label": "x", "category": "debug", "severity": "4"}
    response = as_admin.post(reverse("risk-create"), {**form, **data})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert message in str(errors.get(field) if field else errors)
    assert RiskRule.objects.count() == count
    assert not AuditEntry.objects.exists()


def test_built_in_rules_are_not_removed(as_admin):
    redis = RiskRule.objects.get(port=6379)
    as_admin.post(reverse("risk-delete", args=[redis.pk]))
    assert RiskRule.objects.filter(pk=redis.pk).exists()
    custom = RiskRule.objects.create(port=4444, label="Backdoor", category="debug", severity=Severity.CRITICAL)
    as_admin.post(reverse("risk-delete", args=[custom.pk]))
    assert not RiskRule.objects.filter(pk=custom.pk).exists()
    assert AuditEntry.objects.get().action == "risk.delete"
