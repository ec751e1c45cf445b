"""Writing segmentation rules: audited in the request, judged by a worker.

A rule's save is quick; what it governs is not. A zone-wide rule can begin
(or end) hundreds of thousands of violations, each a row and a change: 16-20 s
at 100,000 hosts, which is no request's work. So the pages, the API and the
baseline import save the rule and its audit entry, and queue a
``RuleJudgement`` in the same transaction; a worker brings the violations in
line (``judge_pending``) and deletes the judgement in the transaction that
does it. A nudge is sent when the save commits; beat's periodic task
(``reach.tasks.settle_segmentation_rules``) takes whatever a lost nudge or a
killed worker left, so nothing is lost, and judging twice changes nothing
the first did not (``segmentation.reconcile`` reads what the database holds).

Removing a rule sets its expiry to now: from that moment it governs nothing,
and the expiry's application (``segmentation.expire``, the same task) moves
its violations to the next rule or ends them, then deletes it. Until then it
is hidden (``removing``).
"""

import logging

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from inventory import audit
from reach import segmentation
from reach.models import RuleJudgement, SegmentationRule

logger = logging.getLogger(__name__)

# What ``segmentation.reach_of`` reads of a rule: enough to find again what it governed.
REACH_FIELDS = ["scope", "zone_id", "tag_id", "cidr", "host_id", "protocol", "port_start", "port_end"]

AUDITED_FIELDS = [
    "mode",
    "scope",
    "zone",
    "tag",
    "cidr",
    "host",
    "protocol",
    "port_start",
    "port_end",
    "justification",
    "owner",
    "ticket",
    "expires_at",
]


def shown_rules():
    """The rules pages and the API show: not those being removed."""
    return SegmentationRule.objects.filter(removing=False)


def with_judging(rules):
    """``rules`` annotated ``judging``: whether a worker has still to work out its violations."""
    return rules.annotate(judging=Exists(RuleJudgement.objects.filter(rule_id=OuterRef("pk"))))


def rule_snapshot(rule: SegmentationRule | None) -> dict | None:
    """What the audit log keeps of a rule: its fields, its vantage points by name."""
    if rule is None:
        return None
    data = audit.snapshot(rule, fields=AUDITED_FIELDS)
    data["vantage_points"] = rule.vantage_names
    return data


def reach_fields(rule: SegmentationRule) -> dict:
    return {name: getattr(rule, name) for name in REACH_FIELDS}


def queue_judgement(rule: SegmentationRule, before: SegmentationRule | None = None) -> None:
    """Have a worker bring the violations of what ``rule`` governs (and governed, as ``before``) in line."""
    RuleJudgement.objects.create(rule=rule, before=reach_fields(before) if before is not None else None)
    transaction.on_commit(nudge)


def nudge() -> None:
    """Ask a worker to judge now. Never raises: beat's periodic task takes what a lost nudge leaves."""
    from reach.tasks import settle_segmentation_rules  # noqa: PLC0415 - the tasks import this module

    try:
        settle_segmentation_rules.delay()
    except Exception:  # the broker is down: the judgement waits in the database
        logger.warning("could not reach the broker to judge segmentation rules; beat will", exc_info=True)


def save_rule(actor, form, *, summary: str = "") -> SegmentationRule:
    """Save a valid ``SegmentationRuleForm``, audited; a worker judges what it governs (before and after)."""
    creating = form.instance._state.adding
    with transaction.atomic():
        before = None
        if not creating:
            before = audit.locked(form.instance, shown_rules().prefetch_related("vantage_points"))
        old = rule_snapshot(before)
        if creating:
            form.instance.created_by = actor if getattr(actor, "pk", None) else None
        rule = form.save()
        new = rule_snapshot(rule)
        if old != new:
            action = "segmentation.create" if creating else "segmentation.update"
            audit.record(actor, action, rule, summary=summary, before=old, after=new)
            queue_judgement(rule, before)
    return rule


def remove_rule(actor, rule: SegmentationRule, *, summary: str = "") -> None:
    """Remove a rule, audited: it governs nothing from now, and a worker lets its violations go and deletes it."""
    with transaction.atomic():
        rule = audit.locked(rule, shown_rules().prefetch_related("vantage_points"))  # removed once
        audit.record(actor, "segmentation.delete", rule, summary=summary, before=rule_snapshot(rule))
        # A queryset update: the model's save would mark it lapsed, its expiry applied already.
        SegmentationRule.objects.filter(pk=rule.pk).update(removing=True, expires_at=timezone.now(), lapsed=False)
        transaction.on_commit(nudge)


def judge_pending(limit: int | None = None) -> int:
    """Work out the violations of the rules saved since; the number of judgements done.

    Each judgement in its own transaction, taken with SKIP LOCKED so that two
    workers share the queue instead of judging one rule twice at once.
    """
    done = 0
    while limit is None or done < limit:
        with transaction.atomic():
            judgement = (
                RuleJudgement.objects.select_for_update(skip_locked=True).select_related("rule").order_by("pk").first()
            )
            if judgement is None:
                break
            rule = judgement.rule
            if not rule.removing:  # a removed rule's expiry does its work
                before = SegmentationRule(pk=rule.pk, **judgement.before) if judgement.before is not None else None
                segmentation.rule_changed(before, rule)
            judgement.delete()
            done += 1
    return done


def settle() -> int:
    """A worker's part: judge the rules saved since, then apply expiries and removals; judgements done."""
    done = judge_pending()
    segmentation.expire()
    return done
