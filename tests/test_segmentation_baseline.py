"""Segmentation rules in the baseline YAML: they round-trip exactly with the port rules, a bad
entry stops the whole import with every problem named, and a file without them leaves them alone."""

import io
from datetime import UTC, datetime

import pytest
import yaml
from django.core.management import CommandError, call_command

from inventory.models import AuditEntry, Host, HostTag, PortRule, Tag, Zone
from inventory.ports import PortSet
from reach import segmentation
from reach.models import SegmentationRule, SegmentationViolation, VantagePoint
from scans.models import Change
from tests.factories import scan

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

A = "198.18.45.1"
ALL_PORTS = {"tcp": PortSet.parse("1-65535")}
# A rule's expiry some years ahead, whenever the tests run.
EXPIRES = datetime(datetime.now(UTC).year + 4, 1, 31, tzinfo=UTC)


@pytest.fixture
def rules():
    office = VantagePoint.objects.create(name="office-lan")
    app = VantagePoint.objects.create(name="dc1-app")
    dc1 = Zone.objects.create(name="dc1")
    scan(office, {A: {5432: "open", 443: "open"}}, probed=ALL_PORTS, zone=dc1)
    db = Tag.objects.create(name="db")
    host = Host.objects.get(address=A)
    HostTag.objects.create(host=host, tag=db)
    made = [
        (SegmentationRule(scope="zone", zone=dc1, protocol="any", port_start=1, port_end=65535, mode="deny",
                          justification="nothing in dc1 from the office\nsecond line: with a colon"), [office]),
        (SegmentationRule(scope="zone", zone=dc1, protocol="tcp", port_start=443, port_end=443, mode="allow",
                          justification="except https", owner="web", ticket="https://t.example/2"), [office]),
        (SegmentationRule(scope="tag", tag=db, protocol="tcp", port_start=5432, port_end=5432, mode="only",
                          justification="=cmd|' /C calc'!A0", expires_at=EXPIRES), [app]),
        (SegmentationRule(scope="cidr", cidr="198.18.45.0/24", protocol="udp", port_start=161, port_end=161,
                          mode="deny", justification="snmp ✓ ünïcode"), [office, app]),
        (SegmentationRule(scope="host", host=host, protocol="tcp", port_start=22, port_end=22, mode="only",
                          justification="bastion"), [app]),
    ]  # fmt: skip
    for rule, vantages in made:
        rule.save()
        rule.vantage_points.set(vantages)
        segmentation.rule_changed(rule)
    return [rule for rule, _ in made]


def export() -> str:
    out = io.StringIO()
    call_command("export_baseline", stdout=out)
    return out.getvalue()


def run_import(path, *args) -> str:
    out = io.StringIO()
    call_command("import_baseline", str(path), *args, stdout=out)
    return out.getvalue()


def test_export_then_import_into_an_empty_policy_round_trips_exactly(rules, tmp_path):
    first = export()
    document = yaml.safe_load(first)
    assert len(document["segmentation"]) == 5
    only = next(entry for entry in document["segmentation"] if entry["mode"] == "only" and entry["scope"] == "tag")
    assert (only["tag"], only["ports"], only["vantage_points"], only["expires"]) == (
        "db",
        5432,
        ["dc1-app"],
        f"{EXPIRES.year}-01-31T00:00:00Z",
    )
    assert set(SegmentationViolation.objects.values_list("port", flat=True)) == {5432}
    path = tmp_path / "baseline.yaml"
    path.write_text(first)
    for rule in SegmentationRule.objects.all():
        segmentation.delete_rule(rule)
    assert not SegmentationViolation.objects.exists()

    output = run_import(path)
    assert "Segmentation rules: 5 created, 0 updated, 0 removed, 0 unchanged." in output
    assert export() == first
    # The violations follow the imported rules at once, recorded as changes.
    assert set(SegmentationViolation.objects.values_list("port", "vantage__name")) == {(5432, "office-lan")}
    assert Change.objects.filter(kind="segmentation_violated", run__isnull=True).exists()
    assert AuditEntry.objects.filter(action="segmentation.create", summary="baseline import").count() == 5
    assert "Segmentation rules: 0 created, 0 updated, 0 removed, 5 unchanged." in run_import(path)


def test_an_edited_file_updates_and_removes_segmentation_rules(rules, tmp_path):
    text = export().replace(
        "vantage_points:\n  - dc1-app\n  scope: tag", "vantage_points:\n  - dc1-app\n  - office-lan\n  scope: tag"
    )
    assert "- office-lan\n  scope: tag" in text
    entries = text.split("\n- ")
    kept = [entry for entry in entries if "except https" not in entry]
    path = tmp_path / "b.yaml"
    path.write_text("\n- ".join(kept))
    output = run_import(path)
    assert "Segmentation rules: 0 created, 1 updated, 1 removed, 3 unchanged." in output
    assert not SegmentationRule.objects.filter(mode="allow").exists()
    assert SegmentationRule.objects.get(scope="tag").vantage_names == ["dc1-app", "office-lan"]
    # 5432 may be reached from office-lan now; 443 lost its exception.
    assert set(SegmentationViolation.objects.values_list("port", flat=True)) == {443}


def test_a_file_without_segmentation_rules_leaves_them_alone(rules, tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("version: 1\nrules: []\n")
    output = run_import(path)
    assert "Segmentation rules: not in the file, left as they are." in output
    assert SegmentationRule.objects.count() == 5
    # With none, the export is what it was before segmentation rules existed.
    for rule in SegmentationRule.objects.all():
        segmentation.delete_rule(rule)
    assert "segmentation" not in yaml.safe_load(export())


def no_vantage_points(text: str, listed: str, scope: str) -> str:
    """The first rule of ``scope`` listing only ``listed`` lists nothing instead."""
    return text.replace(f"vantage_points:\n  - {listed}\n  scope: {scope}", f"vantage_points: []\n  scope: {scope}", 1)


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (lambda t: t.replace("mode: only", "mode: maybe", 1), "'mode' must be one of deny, only, allow"),
        (lambda t: t.replace("  - dc1-app\n  scope: tag", "  - nowhere\n  scope: tag"), "no vantage point 'nowhere'"),
        (lambda t: no_vantage_points(t, "dc1-app", "tag"), "an 'only' rule must list the vantage points"),
        (lambda t: no_vantage_points(t, "office-lan", "zone"), "'vantage_points' is empty"),
        (lambda t: t.replace("vantage_points:\n  - dc1-app\n  scope: tag", "vantage_points: dc1-app\n  scope: tag"),
         "must be a list of vantage point names"),
        (lambda t: t.replace("cidr: 198.18.45.0/24", "cidr: 198.18.45.0/33"), "is not a network"),
        (lambda t: t.replace("ports: 161", "ports: 0-70000"), "must lie within 1-65535"),
        (lambda t: t.replace("zone: dc1", "zone: nowhere", 1), "there is no zone 'nowhere'"),
        (lambda t: t.replace("justification: bastion", "justification: ''"), "'justification' is empty"),
        (lambda t: t.replace("justification: bastion", "justification: x\n  colour: red"), "unknown keys: colour"),
        (lambda t: t.split("segmentation:")[0] + "segmentation: 3\n", "'segmentation' must be a list"),
        (lambda t: t.replace("segmentation:", "segmentaton:"), "Unknown top-level keys: segmentaton"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_whole_with_every_problem_named(rules, tmp_path, mutation, message):
    path = tmp_path / "bad.yaml"
    text = export().replace("tag: db", "tag: brand-new")
    mutated = mutation(text)
    assert mutated != text
    path.write_text(mutated)
    before = (
        SegmentationRule.objects.count(),
        SegmentationViolation.objects.count(),
        PortRule.objects.count(),
        AuditEntry.objects.count(),
        Tag.objects.count(),
        Change.objects.count(),
    )
    with pytest.raises(CommandError) as error:
        call_command("import_baseline", str(path))
    assert message in str(error.value)
    after = (
        SegmentationRule.objects.count(),
        SegmentationViolation.objects.count(),
        PortRule.objects.count(),
        AuditEntry.objects.count(),
        Tag.objects.count(),
        Change.objects.count(),
    )
    assert after == before


def test_a_dry_run_writes_nothing(rules, tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("version: 1\nrules: []\nsegmentation: []\n")
    output = run_import(path, "--dry-run")
    assert "Segmentation rules: 0 created, 0 updated, 5 removed, 0 unchanged." in output
    assert SegmentationRule.objects.count() == 5 and SegmentationViolation.objects.count() == 1
