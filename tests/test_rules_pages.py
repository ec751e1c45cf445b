"""Port rules, assignment rules and host edits through the pages: validated, audited, applied."""

import pytest
from django.urls import reverse

from inventory.choices import PolicyStatus
from inventory.lookups import in_cidr
from inventory.models import AssignmentRule, AuditEntry, Host, HostTag, PortRule, Service, Tag
from tests.factories import observe

pytestmark = pytest.mark.django_db

A, B = "127.68.0.1", "127.68.1.1"


@pytest.fixture
def as_reviewer(client, reviewer):
    client.force_login(reviewer)
    return client


def status(address, port):
    return Service.objects.get(host__address=address, port=port).policy_status


def rule_form(**fields):
    data = {"decision": "rejected", "scope": "global", "protocol": "tcp", "port_start": "23", "justification": "x"}
    data.update(fields)
    return data


def test_a_reviewer_writes_a_network_rule_for_a_port_range(as_reviewer):
    observe({A: [8080, 8443], B: [8080]})
    form = rule_form(scope="cidr", cidr="127.68.0.0/24", port_start="8000", port_end="8999", decision="approved")
    response = as_reviewer.post(reverse("rule-create"), form)
    rule = PortRule.objects.get()
    assert response.status_code == 302 and response.url == rule.get_absolute_url()
    assert (status(A, 8080), status(A, 8443), status(B, 8080)) == ("approved", "approved", "unreviewed")
    assert AuditEntry.objects.filter(action="rule.create", object_id=str(rule.pk)).exists()
    page = as_reviewer.get(rule.get_absolute_url()).content.decode()
    assert "Ports it governs (2)" in page


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"scope": "cidr", "cidr": "127.0.0.300/8"}, "cidr", "is not a network"),
        ({"scope": "cidr"}, "cidr", "Required for this scope"),
        ({"scope": "zone"}, "zone", "Required for this scope"),
        ({"scope": "host", "host_address": "127.68.9.9"}, "host_address", "No known host 127.68.9.9"),
        ({"port_start": "0"}, "port_start", "greater than or equal to 1"),
        ({"port_start": "900", "port_end": "800"}, "port_end", "The last port comes before the first"),
        ({"justification": "   "}, "justification", "required"),
        ({"ticket": "javascript:alert(1)"}, "ticket", "Enter a valid URL"),
    ],
)
def test_bad_rules_are_refused_field_by_field(as_reviewer, fields, field, message):
    observe({A: [23]})
    response = as_reviewer.post(reverse("rule-create"), rule_form(**fields))
    assert response.status_code == 200
    assert any(message in error for error in response.context["form"].errors.get(field, [])), response.context[
        "form"
    ].errors
    assert not PortRule.objects.exists()


def test_removing_a_rule_returns_its_ports_to_unreviewed(as_reviewer):
    observe({A: [23]})
    as_reviewer.post(reverse("rule-create"), rule_form())
    rule = PortRule.objects.get()
    assert status(A, 23) == PolicyStatus.REJECTED
    as_reviewer.post(reverse("rule-delete", args=[rule.public_id]))
    assert not PortRule.objects.exists()
    assert status(A, 23) == PolicyStatus.UNREVIEWED
    assert Host.objects.get(address=A).violating_count == 0
    assert AuditEntry.objects.filter(action="rule.delete").exists()


def test_a_reviewer_tags_a_host_by_hand_and_tag_rules_follow(as_reviewer):
    observe({A: [23]})
    Tag.objects.create(name="legacy")
    as_reviewer.post(reverse("rule-create"), rule_form(scope="tag", tag="legacy"))
    host = Host.objects.get(address=A)
    response = as_reviewer.post(
        reverse("host-edit", args=[host.public_id]), {"zone": host.zone.pk, "owner": "ops", "tag_names": "legacy, web"}
    )
    assert response.status_code == 302
    host.refresh_from_db()
    assert sorted(host.tags.values_list("name", flat=True)) == ["legacy", "web"] and host.owner == "ops"
    assert status(A, 23) == PolicyStatus.REJECTED
    entry = AuditEntry.objects.get(action="host.update")
    assert entry.before["tags"] == [] and entry.after["tags"] == ["legacy", "web"]


def test_a_reviewer_names_a_host_and_the_lists_and_its_page_say_it(as_reviewer):
    observe({A: [23]}, hostnames={A: ["h1.example"]})
    host = Host.objects.get(address=A)
    data = {"name": "billing <db>", "zone": host.zone.pk, "owner": "", "tag_names": ""}
    assert as_reviewer.post(reverse("host-edit", args=[host.public_id]), data).status_code == 302
    host.refresh_from_db()
    assert host.name == "billing <db>"
    assert AuditEntry.objects.get(action="host.update").after["name"] == "billing <db>"
    listed = as_reviewer.get(reverse("host-list")).content.decode()
    assert '<strong>billing &lt;db&gt;</strong> <span class="muted">h1.example</span>' in listed
    page = as_reviewer.get(host.get_absolute_url()).content.decode()
    assert f'<h1>billing &lt;db&gt; <span class="muted">{A}</span>' in page
    observe({A: [23]}, hostnames={A: ["h2.example"]})  # a scan never touches the name
    assert Host.objects.get(pk=host.pk).name == "billing <db>"
    assert as_reviewer.get(f"/api/hosts/{host.public_id}/").json()["name"] == "billing <db>"  # the API says it too


def test_a_bad_tag_name_is_refused(as_reviewer):
    observe({A: [23]})
    host = Host.objects.get(address=A)
    response = as_reviewer.post(
        reverse("host-edit", args=[host.public_id]), {"zone": host.zone.pk, "owner": "", "tag_names": "<b>x</b>"}
    )
    assert response.status_code == 200
    assert "is not a tag name" in response.context["form"].errors["tag_names"][0]
    assert not Tag.objects.exists()


def test_an_admin_assigns_tags_and_owner_by_network(client, admin):
    client.force_login(admin)
    observe({A: [22], B: [22]})
    response = client.post(
        reverse("assignment-create"), {"cidr": "127.68.0.0/24", "zone": "", "owner": "payments", "tag_names": "pci"}
    )
    assert response.status_code == 302
    assert list(Host.objects.get(address=A).tags.values_list("name", flat=True)) == ["pci"]
    assert Host.objects.get(address=A).owner == "payments" and Host.objects.get(address=B).owner == ""
    rule = AssignmentRule.objects.get()
    client.post(reverse("assignment-delete", args=[rule.pk]))
    assert not HostTag.objects.exists() and Host.objects.get(address=A).owner == ""
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"assignment.create", "assignment.delete"} <= actions


def test_an_assignment_rule_must_assign_something_and_name_a_network(client, admin):
    client.force_login(admin)
    response = client.post(reverse("assignment-create"), {"cidr": "nonsense", "owner": "", "tag_names": ""})
    assert response.status_code == 200
    assert "is not a network" in response.context["form"].errors["cidr"][0]
    response = client.post(reverse("assignment-create"), {"cidr": "127.0.0.0/8", "owner": "", "tag_names": ""})
    assert "assigns nothing" in str(response.context["form"].errors)
    assert not AssignmentRule.objects.exists()


def test_in_cidr_as_sqlite_sees_it():
    assert in_cidr("127.1.2.3", "127.0.0.0/8") and not in_cidr("128.1.2.3", "127.0.0.0/8")
    assert in_cidr("::1", "::/64") and not in_cidr("127.1.2.3", "::/0")
    assert not in_cidr("127.1.2.3", "") and not in_cidr("not-an-ip", "127.0.0.0/8") and not in_cidr("127.0.0.1", "x")
