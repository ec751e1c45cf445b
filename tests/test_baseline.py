"""Baseline as code: the port rules round-trip through YAML exactly."""

import io
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from inventory import policy
from inventory.choices import PolicyStatus
from inventory.models import AuditEntry, Host, PortRule, Service, Tag, Zone
from tests.factories import observe

pytestmark = pytest.mark.django_db

A = "127.64.0.1"
# A rule's expiry some years ahead, whenever the tests run.
EXPIRES = datetime(datetime.now(UTC).year + 4, 1, 31, tzinfo=UTC)


@pytest.fixture
def rules():
    observe({A: [22, 80, 8080]})
    dc1 = Zone.objects.create(name="dc1")
    pci = Tag.objects.create(name="pci")
    host = Host.objects.get(address=A)
    made = [
        PortRule(scope="global", protocol="tcp", port_start=23, port_end=23, decision="rejected",
                 justification="telnet"),
        PortRule(scope="zone", zone=dc1, protocol="any", port_start=8000, port_end=8100, decision="approved",
                 justification="app ports\nsecond line: with a colon", owner="apps", ticket="https://t.example/1"),
        PortRule(scope="tag", tag=pci, protocol="tcp", port_start=443, port_end=443, decision="approved",
                 justification="=cmd|' /C calc'!A0", expires_at=EXPIRES),
        PortRule(scope="cidr", cidr="127.64.0.0/16", protocol="udp", port_start=161, port_end=161,
                 decision="rejected", justification="snmp: no"),
        PortRule(scope="host", host=host, protocol="tcp", port_start=22, port_end=22, decision="approved",
                 justification="bastion ✓ ünïcode"),
    ]  # fmt: skip
    for rule in made:
        rule.save()
    policy.rule_changed(*made)
    return made


def export() -> str:
    out = io.StringIO()
    call_command("export_baseline", stdout=out)
    return out.getvalue()


def test_export_then_import_into_an_empty_policy_round_trips_exactly(rules, tmp_path):
    first = export()
    assert "scope: host" in first and "address: 127.64.0.1" in first
    path = tmp_path / "baseline.yaml"
    path.write_text(first)
    PortRule.objects.all().delete()
    policy.evaluate(Service.objects.all())
    assert Service.objects.get(port=22).policy_status == PolicyStatus.UNREVIEWED

    out = io.StringIO()
    call_command("import_baseline", str(path), stdout=out)
    assert "5 created, 0 updated, 0 removed, 0 unchanged" in out.getvalue()
    assert export() == first
    # The policy follows the imported rules at once.
    assert Service.objects.get(port=22).policy_status == PolicyStatus.APPROVED
    assert AuditEntry.objects.filter(action="baseline.import").exists()


def test_importing_the_same_file_changes_nothing(rules, tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text(export())
    out = io.StringIO()
    call_command("import_baseline", str(path), stdout=out)
    assert "0 created, 0 updated, 0 removed, 5 unchanged" in out.getvalue()


def test_an_edited_file_updates_and_removes_rules(rules, tmp_path):
    text = export().replace("justification: telnet", "justification: telnet is clear text")
    # Drop the snmp rule (its entry runs from its id to the next entry).
    entries = text.split("\n- ")
    kept = [entry for entry in entries if "snmp" not in entry]
    path = tmp_path / "b.yaml"
    path.write_text("\n- ".join(kept))
    out = io.StringIO()
    call_command("import_baseline", str(path), stdout=out)
    assert "0 created, 1 updated, 1 removed, 3 unchanged" in out.getvalue()
    assert PortRule.objects.get(port_start=23).justification == "telnet is clear text"
    assert not PortRule.objects.filter(port_start=161).exists()


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (lambda t: t.replace("scope: zone", "scope: planet"), "'scope' must be one of"),
        (lambda t: t.replace("ports: 23", "ports: 70000"), "must lie within 1-65535"),
        (lambda t: t.replace("zone: dc1", "zone: nowhere"), "there is no zone 'nowhere'"),
        (lambda t: t.replace("cidr: 127.64.0.0/16", "cidr: 999.1.0.0/16"), "is not a network"),
        (lambda t: t.replace("justification: telnet", "justification: ''"), "'justification' is empty"),
        (lambda t: t.replace("address: 127.64.0.1", "address: 127.64.9.9"), "no known host 127.64.9.9"),
        (lambda t: t + "  colour: red\n", "unknown keys: colour"),
        (lambda t: "version: 1\nrules: [\n", "not valid YAML"),
        (lambda t: "- just a list\n", "Expected a mapping"),
    ],
)
def test_a_bad_file_is_refused_whole_with_every_problem_named(rules, tmp_path, mutation, message):
    path = tmp_path / "bad.yaml"
    path.write_text(mutation(export().replace("tag: pci", "tag: brand-new")))
    before = (PortRule.objects.count(), AuditEntry.objects.count(), Tag.objects.count())
    with pytest.raises(CommandError) as error:
        call_command("import_baseline", str(path))
    assert message in str(error.value)
    assert (PortRule.objects.count(), AuditEntry.objects.count(), Tag.objects.count()) == before


def test_dry_run_writes_nothing(rules, tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("version: 1\nrules: []\n")
    out = io.StringIO()
    call_command("import_baseline", str(path), "--dry-run", stdout=out)
    assert "would have 0 created, 0 updated, 5 removed" in out.getvalue()
    assert PortRule.objects.count() == 5
