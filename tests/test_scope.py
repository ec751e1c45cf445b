"""The scan scope: allowed and excluded networks, checked at every step."""

import ipaddress

import pytest
from django.urls import reverse

from inventory.models import Zone
from scans.choices import ChunkStatus, RunStatus
from scans.models import Change, ScanProfile, ScanTarget, ScopeRule
from scans.scope import Rule, Scope, ScopeError
from scans.services import plan_chunks
from scans.targets import parse_target, parse_targets
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
