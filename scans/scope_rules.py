"""Changing the scan scope: one way for the Scope page, the API and ``manage.py scope``.

Each change is audited in its own transaction; built-in exclusions
(link-local, cloud metadata) are never removed. What the scope allows is
read by ``scans.scope.Scope``.
"""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from inventory import audit
from scans.models import ScopeRule


class ScopeRuleLocked(Exception):
    """A built-in exclusion (link-local, cloud metadata): never removed."""


def add_scope_rule(form, actor, *, summary: str = "") -> ScopeRule:
    """Save a rule that ``scans.forms.ScopeRuleForm`` accepted, with its audit entry.

    Raises ValidationError if another rule for the network was saved since the form looked.
    """
    form.instance.created_by = actor if getattr(actor, "pk", None) else None
    try:
        with transaction.atomic():
            rule = form.save()
            audit.record(actor, "scope.add", rule, summary=summary, after=audit.snapshot(rule))
    except IntegrityError:
        raise ValidationError(f"There is already a rule for {form.instance.network}.") from None
    return rule


def remove_scope_rule(rule: ScopeRule, actor, *, summary: str = "") -> None:
    if rule.locked:
        raise ScopeRuleLocked(f"{rule.network} is a built-in exclusion and cannot be removed.")
    with transaction.atomic():
        rule = audit.record_delete(actor, "scope.remove", rule, summary=summary)
        rule.delete()
