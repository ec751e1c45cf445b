"""The scan scope: allowed and excluded networks, checked at every step."""

import io
import ipaddress
import re
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.test import APIClient

from inventory.models import AuditEntry, Zone
from scans.choices import ChunkStatus, RunStatus
from scans.models import Change, ScanProfile, ScanTarget, ScopeRule
from scans.scope import Rule, Scope, ScopeError
from scans.services import plan_chunks
from scans.targets import parse_target, parse_targets
from tests.conftest import ROOT, process_env
from tests.lab import LAB_PORT_SPEC
from tests.test_scan_lab import scan

DEFAULT = Scope(
    [
        Rule(ipaddress.ip_network("127.0.0.0/8"), "allow"),
        Rule(ipaddress.ip_network("198.18.0.0/15"), "allow"),
        Rule(ipaddress.ip_network("100.64.0.0/10"), "allow"),
        Rule(ipaddress.ip_network("fc00::/7"), "allow"),
        Rule(ipaddress.ip_network("169.254.0.0/16"), "exclude", "link-local"),
        Rule(ipaddress.ip_network("100.100.100.200/32"), "exclude", "cloud metadata"),
        Rule(ipaddress.ip_network("198.18.9.0/24"), "exclude", "the payment network"),
    ]
)


@pytest.mark.parametrize("text", ["127.0.0.1", "198.18.0.0/16", "198.18.2.3-198.18.2.9", "fd00::1", "db.corp.example"])
def test_items_inside_allowed_networks_pass(text):
    DEFAULT.check_items(parse_targets(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("169.254.169.254", r"excluded from scanning \(link-local\)"),
        ("100.100.100.200", r"excluded from scanning \(cloud metadata\)"),
        ("198.18.9.0/24", r"excluded from scanning \(the payment network\)"),
        ("203.0.113.5", "outside the scan scope"),
        ("198.17.255.255-198.18.0.5", "outside the scan scope"),
        ("2001:db8::1", "outside the scan scope"),
    ],
)
def test_items_outside_or_excluded_are_refused(text, message):
    with pytest.raises(ScopeError, match=message):
        DEFAULT.check_items(parse_targets(text))


def test_excluded_addresses_inside_an_allowed_network_are_skipped_when_planning():
    chunks = plan_chunks(parse_targets("198.18.9.250-198.18.10.5"), 256, skip=DEFAULT.is_excluded)
    assert [chunk.targets for chunk in chunks] == [["198.18.10.0/30", "198.18.10.4/31"]]
    assert chunks[0].size == 6


def test_resolved_addresses_are_checked_one_by_one():
    assert DEFAULT.refusal(parse_target("198.18.0.1").first) is None
    assert "excluded" in DEFAULT.refusal(parse_target("169.254.169.254").first)
    assert "outside the scan scope" in DEFAULT.refusal(parse_target("8.8.8.8").first)


@pytest.mark.django_db
def test_a_hostname_that_resolves_out_of_scope_is_refused_at_scan_time(lab):
    lab.open(1, 41022)
    target = ScanTarget.objects.create(
        name="by name",
        zone=Zone.default(),
        targets="localhost",
        ports=LAB_PORT_SPEC,
        profile=ScanProfile.objects.get(slug="quick"),
    )
    # The admins take loopback out of scope after the target was saved.
    ScopeRule.objects.filter(network__in=["127.0.0.0/8", "::1/128"]).delete()

    run = scan(target)

    assert run.status == RunStatus.FAILED
    assert run.chunks.get().status == ChunkStatus.FAILED
    assert "Refused to scan localhost: it resolved to" in run.error
    assert "outside the scan scope" in run.error
    assert not Change.objects.exists()


@pytest.mark.django_db
def test_scope_rules_are_managed_by_admins(as_admin):
    response = as_admin.post(
        reverse("scope"), {"network": "203.0.113.7/24", "action": "allow", "reason": "our public range"}
    )
    assert response.status_code == 302
    rule = ScopeRule.objects.get(network="203.0.113.0/24")
    assert rule.created_by.username == "alice-admin"

    assert (
        as_admin.post(reverse("scope"), {"network": "0.0.0.0/0", "action": "allow", "reason": "x"}).status_code == 400
    )
    assert (
        as_admin.post(reverse("scope"), {"network": "not-a-net", "action": "allow", "reason": "x"}).status_code == 400
    )
    assert (
        as_admin.post(reverse("scope"), {"network": "203.0.113.0/24", "action": "allow", "reason": "x"}).status_code
        == 400
    )

    locked = ScopeRule.objects.get(network="169.254.0.0/16")
    as_admin.post(reverse("scope-delete", args=[locked.pk]))
    assert ScopeRule.objects.filter(pk=locked.pk).exists()
    as_admin.post(reverse("scope-delete", args=[rule.pk]))
    assert not ScopeRule.objects.filter(pk=rule.pk).exists()


# --- the scope without the page: manage.py scope and /api/scope/ ------------------------------------------


def scope_command(*args) -> str:
    out = io.StringIO()
    call_command("scope", *args, stdout=out)
    return out.getvalue()


def scope_entries() -> list[tuple]:
    return list(AuditEntry.objects.order_by("seq").values_list("action", "actor_name", "object_repr", "summary"))


@pytest.mark.django_db
def test_the_scope_command_lists_allows_excludes_and_removes_as_the_page_does(admin):
    listed = scope_command("list")
    assert re.search(r"^exclude\s+169\.254\.0\.0/16\s+.*\(built-in\)$", listed, re.MULTILINE)
    assert re.search(r"^allow\s+10\.0\.0\.0/8\s+RFC 1918", listed, re.MULTILINE)

    assert "allow 203.0.113.0/24" in scope_command(
        "allow", "203.0.113.7/24", "--reason", "our range", "--user", admin.username
    )
    assert "exclude 10.9.0.0/16" in scope_command("exclude", "10.9.0.0/16", "--note", "the payment network")
    allowed, excluded = ScopeRule.objects.get(network="203.0.113.0/24"), ScopeRule.objects.get(network="10.9.0.0/16")
    assert (allowed.action, allowed.reason, allowed.created_by) == ("allow", "our range", admin)
    assert (excluded.action, excluded.created_by) == ("exclude", None)
    assert (
        Scope.current().refusal(ipaddress.ip_address("10.9.1.1"))
        == "10.9.1.1 is excluded from scanning (the payment network)"
    )
    assert "(alice-admin)" in scope_command("list")

    assert "removed: allow 203.0.113.0/24" in scope_command("remove", "203.0.113.0/24", "--user", admin.username)
    assert not ScopeRule.objects.filter(network="203.0.113.0/24").exists()
    assert scope_entries() == [
        ("scope.add", "alice-admin", "allow 203.0.113.0/24", "By manage.py scope."),
        ("scope.add", "portwatch", "exclude 10.9.0.0/16", "By manage.py scope."),
        ("scope.remove", "alice-admin", "allow 203.0.113.0/24", "By manage.py scope."),
    ]
    assert AuditEntry.objects.get(action="scope.remove").before["reason"] == "our range"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["allow", "not-a-net", "--reason", "x"], "network: 'not-a-net' is not an address or a network."),
        (["allow", "0.0.0.0/0", "--reason", "x"], "Allowing so large a part of the address space is refused"),
        (["allow", "10.0.0.0/8", "--reason", "x"], "There is already a rule for 10.0.0.0/8."),
        (["exclude", "198.18.9.0/24", "--reason", "   "], "reason: This field is required."),
        (["allow", "198.18.9.0/24"], "the following arguments are required: --reason/--note"),
        (["allow", "198.18.9.0/24", "--reason", "x", "--user", "nobody"], "There is no user 'nobody'."),
        (["allow", "198.18.9.0/24", "--reason", "x", "--user", "victor-viewer"], "does not have the admin role"),
        (["remove", "169.254.0.0/16"], "169.254.0.0/16 is a built-in exclusion and cannot be removed."),
        (["remove", "fd00:ec2::254"], "fd00:ec2::254/128 is a built-in exclusion and cannot be removed."),
        (["remove", "198.18.9.0/24"], "There is no scope rule for 198.18.9.0/24"),
        (["remove", "nonsense"], "'nonsense' is not an address or a network."),
    ],
)
def test_the_scope_command_refuses_bad_input_and_changes_nothing(viewer, args, message):
    rules = list(ScopeRule.objects.values_list("network", "action", "reason", "locked"))
    with pytest.raises(CommandError, match=re.escape(message)):
        scope_command(*args)
    assert list(ScopeRule.objects.values_list("network", "action", "reason", "locked")) == rules
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_a_refused_scope_command_exits_non_zero_with_the_reason_and_no_traceback():
    result = subprocess.run(
        [sys.executable, "manage.py", "scope", "allow", "0.0.0.0/0", "--reason", "everything"],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stderr
    assert "Nothing was changed" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.django_db
def test_the_scope_api_reads_for_everyone_and_changes_for_admins_with_the_pages_checks_and_audit(admin, viewer):
    admin_api, viewer_api = APIClient(), APIClient()
    admin_api.force_authenticate(admin)
    viewer_api.force_authenticate(viewer)

    listed = viewer_api.get("/api/scope/", {"action": "exclude"}).json()["results"]
    assert {"network": "169.254.0.0/16", "locked": True} in [
        {"network": rule["network"], "locked": rule["locked"]} for rule in listed
    ]
    assert (
        viewer_api.post("/api/scope/", {"network": "203.0.113.0/24", "action": "allow", "reason": "x"}).status_code
        == 403
    )

    created = admin_api.post(
        "/api/scope/", {"network": "203.0.113.7/24", "action": "allow", "reason": "our range"}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert {key: created.json()[key] for key in ("network", "action", "reason", "locked", "created_by")} == {
        "network": "203.0.113.0/24",
        "action": "allow",
        "reason": "our range",
        "locked": False,
        "created_by": "alice-admin",
    }
    for bad, field in [
        ({"network": "203.0.113.0/24", "action": "allow", "reason": "again"}, "network"),
        ({"network": "::/0", "action": "allow", "reason": "everything"}, "network"),
        ({"network": "x", "action": "allow", "reason": "x"}, "network"),
        ({"network": "198.18.9.0/24", "action": "maybe", "reason": "x"}, "action"),
        ({"network": "198.18.9.0/24", "action": "exclude"}, "reason"),
    ]:
        refused = admin_api.post("/api/scope/", bad, format="json")
        assert refused.status_code == 400 and field in refused.json(), (bad, refused.json())
    assert ScopeRule.objects.filter(network__in=["::/0", "198.18.9.0/24"]).count() == 0

    locked = ScopeRule.objects.get(network="169.254.0.0/16")
    response = admin_api.delete(f"/api/scope/{locked.pk}/")
    assert response.status_code == 403 and "built-in exclusion" in response.json()["detail"]
    assert ScopeRule.objects.filter(pk=locked.pk).exists()
    assert admin_api.delete(f"/api/scope/{created.json()['id']}/").status_code == 204
    assert not ScopeRule.objects.filter(network="203.0.113.0/24").exists()
    assert [(action, actor) for action, actor, *_ in scope_entries()] == [
        ("scope.add", "alice-admin"),
        ("scope.remove", "alice-admin"),
    ]
