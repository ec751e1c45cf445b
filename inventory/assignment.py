"""Assignment rules: hosts within a network get tags and an owner.

Rules only add. A tag a person gave a host, or an owner a person set, is
never taken away by a rule; removing or editing a rule takes back only what
that rule gave. Where several rules give an owner, the narrowest network wins
(rules are applied widest first, each overwriting what a wider rule set).
"""

import ipaddress

from django.db.models import Q, QuerySet

from inventory import policy
from inventory.models import AssignmentRule, Host, HostTag

BATCH = 5000


def _prefix(rule: AssignmentRule) -> int:
    network = ipaddress.ip_network(rule.cidr, strict=False)
    return network.prefixlen + (96 if network.version == 4 else 0)


def _hosts_of(rule: AssignmentRule, hosts: QuerySet | None = None) -> QuerySet:
    matched = Host.objects.filter(address__in_cidr=rule.cidr)
    if rule.zone_id:
        matched = matched.filter(zone_id=rule.zone_id)
    if hosts is not None:
        matched = matched.filter(pk__in=hosts.order_by().values("pk"))
    return matched


def apply_to_hosts(hosts: QuerySet) -> None:
    """Give ``hosts`` what every rule covering them gives (new hosts, after a scan)."""
    rules = sorted(AssignmentRule.objects.prefetch_related("tags"), key=_prefix)
    for rule in rules:
        matched = _hosts_of(rule, hosts)
        tag_ids = [tag.pk for tag in rule.tags.all()]
        if tag_ids:
            host_ids = list(matched.values_list("pk", flat=True))
            for start in range(0, len(host_ids), BATCH):
                HostTag.objects.bulk_create(
                    [
                        HostTag(host_id=host_id, tag_id=tag_id, rule=rule)
                        for host_id in host_ids[start : start + BATCH]
                        for tag_id in tag_ids
                    ],
                    ignore_conflicts=True,  # a person's tag, or another rule's, stays as it is
                )
        if rule.owner:
            matched.filter(Q(owner="") | Q(owner_rule__isnull=False)).update(owner=rule.owner, owner_rule=rule)


def take_back(rule: AssignmentRule) -> None:
    """Remove what ``rule`` gave (before it is edited or deleted)."""
    HostTag.objects.filter(rule=rule).delete()
    Host.objects.filter(owner_rule=rule).update(owner="", owner_rule=None)


def rule_changed(before: AssignmentRule | None, after: AssignmentRule | None) -> None:
    """Re-apply the rules to every host in the old and the new network, then re-evaluate their ports.

    ``before`` is a copy of the rule as it was (its cidr and zone); call after saving ``after``.
    """
    reach = Q(pk__in=[])
    for rule in (before, after):
        if rule is not None:
            reach |= Q(pk__in=_hosts_of(rule).values("pk"))
    hosts = Host.objects.filter(reach)
    host_ids = list(hosts.values_list("pk", flat=True))
    if after is not None:
        take_back(after)
    touched = Host.objects.filter(pk__in=host_ids)
    apply_to_hosts(touched)
    # Tag-scoped port rules may now apply, or no longer.
    policy.evaluate_hosts(touched)
