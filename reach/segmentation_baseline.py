"""Segmentation rules in the baseline YAML (``inventory.baseline``), under a ``segmentation`` key.

Each entry is a port rule's scope, protocol, ports, justification, owner,
ticket and expiry (the same keys, the same checks), with ``mode`` and
``vantage_points`` (names) instead of ``decision``. A file without the key
(written before segmentation rules existed) leaves them as they are; with it,
they become exactly what it lists, like the port rules.
"""

import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from inventory import audit
from inventory.baseline import entry_id, read_scoped, scoped_entry, sort_key
from reach import segmentation_writes
from reach.models import SegmentationRule, VantagePoint
from reach.segmentation_choices import SegmentationMode

KEY = "segmentation"
ENTRY_KEYS = {"id", "mode", "vantage_points", "scope", "zone", "tag", "cidr", "host", "protocol", "ports"}
ENTRY_KEYS |= {"justification"}
OPTIONAL_KEYS = {"owner", "ticket", "expires"}


@dataclass
class Wanted:
    """A rule as the file says it, not saved yet, and its vantage points."""

    rule: SegmentationRule
    vantage_points: list[VantagePoint]

    @property
    def entry(self) -> dict:
        return entry_of(self.rule, sorted(vantage.name for vantage in self.vantage_points))


def entry_of(rule: SegmentationRule, vantage_names: list[str]) -> dict:
    return scoped_entry(rule, {"id": str(rule.public_id), "mode": rule.mode, "vantage_points": vantage_names})


def export_entries() -> list[dict]:
    rules = segmentation_writes.shown_rules().select_related("zone", "tag", "host__zone")
    rules = rules.prefetch_related("vantage_points")
    return sorted((entry_of(rule, rule.vantage_names) for rule in rules), key=sort_key)


def read(entries) -> tuple[list[Wanted], list[str]]:
    """The rules ``entries`` describe, and every problem found (nothing is written)."""
    if not isinstance(entries, list):
        return [], [f"'{KEY}' must be a list of segmentation rules."]
    problems: list[str] = []
    wanted: list[Wanted] = []
    seen: set[uuid.UUID] = set()
    names = {vantage.name: vantage for vantage in VantagePoint.objects.all()}
    for index, entry in enumerate(entries, start=1):
        try:
            item = _wanted(entry, names)
        except ValidationError as error:
            problems.extend(f"segmentation rule {index}: {message}" for message in error.messages)
            continue
        if item.rule.public_id in seen:
            problems.append(f"segmentation rule {index}: the id {item.rule.public_id} is used twice.")
            continue
        seen.add(item.rule.public_id)
        wanted.append(item)
    return wanted, problems


def _wanted(entry, names: dict[str, VantagePoint]) -> Wanted:
    public_id = entry_id(entry, ENTRY_KEYS | OPTIONAL_KEYS, ("mode", "vantage_points"))
    mode = str(entry["mode"])
    if mode not in SegmentationMode.values:
        raise ValidationError(f"'mode' must be one of {', '.join(SegmentationMode.values)}.")
    listed = entry["vantage_points"]
    if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
        raise ValidationError("'vantage_points' must be a list of vantage point names.")
    if not listed:
        if mode == SegmentationMode.ONLY:
            raise ValidationError("an 'only' rule must list the vantage points that may reach its ports.")
        raise ValidationError("'vantage_points' is empty: name at least one.")
    missing = sorted({name for name in listed if name not in names})
    if missing:
        raise ValidationError(f"there is no vantage point {', '.join(repr(name[:63]) for name in missing)}.")
    rule = SegmentationRule(public_id=public_id, mode=mode)
    read_scoped(entry, rule)
    return Wanted(rule, [names[name] for name in sorted(set(listed))])


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0

    def __str__(self):
        return f"{self.created} created, {self.updated} updated, {self.removed} removed, {self.unchanged} unchanged"


def lock_rules() -> None:
    """Lock every segmentation rule until the import's transaction ends, before it records anything
    (the rows, then the audit log's head: see inventory.audit.record_delete)."""
    list(SegmentationRule.objects.select_for_update().values_list("pk", flat=True))


def apply(wanted: list[Wanted], *, actor, keep_missing: bool, get_tag) -> Counts:
    """Make the segmentation rules ``wanted`` (inside the import's transaction): audited, queued for judging."""
    counts = Counts()
    existing = {
        rule.public_id: rule
        # Those being removed too: one listed again is brought back, not made twice.
        for rule in SegmentationRule.objects.select_related("zone", "tag", "host__zone").prefetch_related(
            "vantage_points"
        )
    }
    for item in wanted:
        rule = item.rule
        if rule.tag is not None and rule.tag.pk is None:
            rule.tag = get_tag(rule.tag.name)
        old = existing.get(rule.public_id)
        if old is None:
            rule.created_by = actor if getattr(actor, "pk", None) else None
            rule.save()
            rule.vantage_points.set(item.vantage_points)
            audit.record(
                actor,
                "segmentation.create",
                rule,
                summary="baseline import",
                after=segmentation_writes.rule_snapshot(rule),
            )
            counts.created += 1
            segmentation_writes.queue_judgement(rule)
        elif old.removing or entry_of(old, old.vantage_names) != item.entry:
            before = segmentation_writes.rule_snapshot(old)
            rule.pk, rule.created_by_id, rule.created_at = old.pk, old.created_by_id, old.created_at
            rule.save()
            rule.vantage_points.set(item.vantage_points)
            audit.record(
                actor,
                "segmentation.update",
                rule,
                summary="baseline import",
                before=before,
                after=segmentation_writes.rule_snapshot(rule),
            )
            counts.updated += 1
            segmentation_writes.queue_judgement(rule, old)
        else:
            counts.unchanged += 1
    if not keep_missing:
        listed = {item.rule.public_id for item in wanted}
        for public_id, old in existing.items():
            if public_id not in listed and not old.removing:
                segmentation_writes.remove_rule(actor, old, summary="baseline import")
                counts.removed += 1
    return counts
