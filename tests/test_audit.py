"""The audit log: configuration changes are recorded with before and after,
the chain is verified, and tampering of any kind is found."""

import io

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.urls import reverse

from inventory import audit
from inventory.models import AuditEntry, AuditLogError
from scans.models import ScanTarget, ScopeRule
from tests.test_targets_pages import form_data

pytestmark = pytest.mark.django_db


def target_form(**overrides):
    return form_data(ports="", **overrides)


def test_creating_and_editing_a_target_records_who_and_before_and_after(as_admin, admin):
    response = as_admin.post(reverse("target-create"), target_form())
    assert response.status_code == 302, response.content
    target = ScanTarget.objects.get()
    as_admin.post(reverse("target-edit", args=[target.public_id]), target_form(targets="127.0.0.2"))
    # Saving it unchanged records nothing.
    as_admin.post(reverse("target-edit", args=[target.public_id]), target_form(targets="127.0.0.2"))

    created, edited = AuditEntry.objects.order_by("seq")
    assert (created.action, created.actor, created.actor_name) == ("target.create", admin, "alice-admin")
    assert created.before is None and created.after["targets"] == "127.0.0.1"
    assert (edited.action, edited.before["targets"], edited.after["targets"]) == (
        "target.update",
        "127.0.0.1",
        "127.0.0.2",
    )
    assert edited.object_id == str(target.pk) and edited.prev_hash == created.hash


def test_scope_changes_are_recorded(as_admin):
    as_admin.post(reverse("scope"), {"network": "198.51.100.0/24", "action": "allow", "reason": "DMZ"})
    rule = ScopeRule.objects.get(network="198.51.100.0/24")
    as_admin.post(reverse("scope-delete", args=[rule.pk]))
    assert list(AuditEntry.objects.order_by("seq").values_list("action", flat=True)) == ["scope.add", "scope.remove"]
    assert AuditEntry.objects.get(action="scope.remove").before["reason"] == "DMZ"


def test_a_refused_form_records_nothing(as_admin):
    response = as_admin.post(reverse("target-create"), target_form(targets="127.0.0.1; rm -rf /"))
    assert response.status_code == 200
    assert not AuditEntry.objects.exists()


def test_the_audit_page_filters_and_escapes(as_viewer, admin):
    audit.record(admin, "zone.create", object_type="inventory.zone", object_repr="<script>alert(1)</script>")
    audit.record(admin, "target.scan", object_type="scans.scantarget", object_repr="office")

    page = as_viewer.get(reverse("audit-list"), {"action": "target.scan"})
    assert page.status_code == 200
    assert b"office" in page.content and b"alert(1)" not in page.content

    page = as_viewer.get(reverse("audit-list"))
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page.content and b"<script>alert" not in page.content

    bad = as_viewer.get(reverse("audit-list"), {"since": "yesterday-ish"})
    assert bad.status_code == 200 and b"Enter a valid date" in bad.content


def test_entries_cannot_be_changed_or_deleted():
    entry = audit.record(None, "zone.create", object_type="inventory.zone", object_repr="dc1")
    entry.summary = "rewritten"
    with pytest.raises(AuditLogError):
        entry.save()
    with pytest.raises(AuditLogError):
        entry.delete()
    # Nor by going around the ORM: PostgreSQL refuses it.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE inventory_auditentry SET summary = 'rewritten'")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM inventory_auditentry")


def test_deleting_a_user_keeps_their_entries(admin):
    audit.record(admin, "zone.create", object_type="inventory.zone", object_repr="dc1")
    admin.delete()
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.actor_name) == (None, "alice-admin")
    call_command("verify_audit")


def tamper(sql: str) -> None:
    """What someone with database access would do, past the trigger."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")  # user triggers off
        cursor.execute(sql)
        cursor.execute("SET session_replication_role = origin")


@pytest.fixture
def chain(db):
    return [audit.record(None, "zone.update", object_type="inventory.zone", object_repr=f"z{n}") for n in range(5)]


def test_an_intact_chain_verifies(chain, capsys):
    call_command("verify_audit")
    assert f"intact: 5 entries, head {chain[-1].hash}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("sql", "finding"),
    [
        ("UPDATE inventory_auditentry SET summary = 'nothing to see' WHERE seq = 3", "entry #3: its content"),
        ("UPDATE inventory_auditentry SET actor_name = 'mallory' WHERE seq = 2", "entry #2: its content"),
        ("DELETE FROM inventory_auditentry WHERE seq = 3", "entries #3 to #3 are missing"),
        ("DELETE FROM inventory_auditentry WHERE seq = 5", "entries were cut off the end"),
        ("UPDATE inventory_auditentry SET seq = seq + 10 WHERE seq = 4", "entry #14"),
    ],
    ids=["altered", "actor-rewritten", "removed", "cut-off", "renumbered"],
)
def test_tampering_is_found(chain, capsys, sql, finding):
    tamper(sql)
    with pytest.raises(CommandError, match="not intact"):
        call_command("verify_audit")
    assert finding in capsys.readouterr().err


def test_a_rewritten_chain_is_found_against_a_recorded_head(chain, capsys):
    recorded = chain[-1].hash
    # Rewriting every hash after an edit keeps the chain consistent: only a
    # head recorded outside PortWatch shows that history changed.
    tamper("DELETE FROM inventory_auditentry WHERE seq = 5")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE inventory_audithead SET seq = 4, hash = %s", [chain[3].hash])
    call_command("verify_audit")
    with pytest.raises(CommandError):
        call_command("verify_audit", head=recorded)
    assert "no longer in the chain" in capsys.readouterr().err


def test_imports_are_recorded_and_so_are_refused_ones(as_admin):
    from tests.test_import import FIXTURES, REAL, upload

    upload(as_admin, REAL)
    upload(as_admin, FIXTURES / "truncated_mid_host.xml")
    imported, refused = AuditEntry.objects.order_by("seq")
    assert (imported.action, imported.object_repr) == ("import", REAL.name)
    assert "2 host(s), 5 change(s)" in imported.summary  # 2 discovered, 3 opened
    assert (refused.action, refused.object_repr) == ("import.refuse", "truncated_mid_host.xml")
    call_command("verify_audit")


def test_the_first_admin_account_is_recorded(capsys):
    from django.contrib.auth.models import User

    User.objects.all().delete()
    call_command("ensure_admin")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor_name, entry.object_repr) == ("user.create", "portwatch", "admin")


def _beside_a_held_row(instance, then, write) -> list[Exception]:
    """Hold ``instance``'s row as an audited update does, until ``write`` (another connection) waits
    for a lock; then ``then(row)`` (record, maybe delete) and commit. Return what either raised."""
    import threading

    from tests.processes import backend_pid, wait_for, waits_for_a_lock

    row_locked, pids, errors = threading.Event(), {}, []

    def holder():
        try:
            with transaction.atomic():
                row = audit.locked(instance)
                row_locked.set()
                wait_for(lambda: "other" in pids and waits_for_a_lock(pids["other"]), 30, message="the other write")
                then(row)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    def other():
        try:
            pids["other"] = backend_pid()
            row_locked.wait(30)
            write()
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=holder), threading.Thread(target=other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def _actions(instance) -> list[str]:
    return list(AuditEntry.objects.filter(object_id=str(instance.pk)).order_by("seq").values_list("action", flat=True))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("second", ["update", "delete"])
def test_a_delete_beside_another_write_of_the_same_row_neither_deadlocks_nor_records_twice(admin, second):
    """Every audited write locks its row, then the log's head. A delete that recorded first held the
    head while it waited for the row an update held, and the update waited for the head: a deadlock
    (the schema fuzz run's two workers found it, DELETE /api/vantage-points/{name}/ answered 500)."""
    from reach import services
    from reach.models import VantagePoint

    vantage = VantagePoint.objects.create(name="office-lan")

    def then(row):
        if second == "delete":
            audit.record(admin, "vantage.delete", row, before=audit.snapshot(row))
            row.delete()
        else:
            audit.record(admin, "vantage.update", row, summary="renamed")

    errors = _beside_a_held_row(
        vantage, then, lambda: services.delete_vantage(VantagePoint.objects.get(pk=vantage.pk), admin)
    )
    assert not VantagePoint.objects.filter(pk=vantage.pk).exists()
    if second == "update":
        assert errors == []
        assert _actions(vantage) == ["vantage.update", "vantage.delete"]
    else:  # deleted meanwhile: the second delete is a 404, and the log says it once
        assert [type(error).__name__ for error in errors] == ["Http404"], errors
        assert _actions(vantage) == ["vantage.delete"]
    assert audit.verify()[1] == []


@pytest.mark.django_db(transaction=True)
def test_a_baseline_import_beside_an_edit_of_a_rule_it_removes_waits_for_it(admin, tmp_path):
    """The import locks the rules it may rewrite or remove before its first entry locks the log's head."""
    from inventory.models import PortRule

    kept = PortRule.objects.create(scope="global", protocol="tcp", port_start=22, port_end=22, decision="approved",
                                   justification="ssh")  # fmt: skip
    removed = PortRule.objects.create(scope="global", protocol="tcp", port_start=23, port_end=23, decision="rejected",
                                      justification="telnet")  # fmt: skip
    out = io.StringIO()
    call_command("export_baseline", stdout=out)
    document = yaml.safe_load(out.getvalue())
    document["rules"] = [rule for rule in document["rules"] if rule["ports"] == 22]
    document["rules"][0]["justification"] = "ssh, from the baseline"  # recorded before the removal
    path = tmp_path / "baseline.yaml"
    path.write_text(yaml.safe_dump(document))

    errors = _beside_a_held_row(
        removed,
        lambda row: audit.record(admin, "rule.update", row, summary="edited on the page"),
        lambda: call_command("import_baseline", str(path), stdout=io.StringIO()),
    )
    assert errors == []
    assert _actions(removed) == ["rule.update", "rule.delete"] and _actions(kept) == ["rule.update"]
    assert audit.verify()[1] == []
