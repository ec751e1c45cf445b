"""Baseline as code: the port rules (and the segmentation rules) as YAML, to keep in git and review like code.

``export_baseline`` writes every rule in a stable order with stable ids;
``import_baseline`` makes the rules exactly what the file says (rules are
matched by id: new ones created, changed ones updated, missing ones removed
unless ``keep_missing``). Exporting what was imported gives the same bytes.
Segmentation rules are listed under ``segmentation`` (``reach.segmentation_baseline``);
a file without that key leaves them alone.

The whole file is checked before anything is written: one bad rule and the
import stops with every problem listed, having changed nothing. Each rule
written is audited, and the ports the rules touch are re-evaluated in the
same transaction.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from inventory import audit, binds, policy
from inventory.choices import RULE_PROTOCOL_CHOICES, SCOPE_RANK, Decision, RuleScope
from inventory.models import Host, PortRule, ScopedRule, Tag, Zone

if TYPE_CHECKING:
    from reach.segmentation_baseline import Counts

VERSION = 1
HEADER = (
    "# PortWatch baseline: the port rules and the segmentation rules. Review changes to it like code,\n"
    "# then apply it with\n"
    "#   python3 manage.py import_baseline FILE\n"
    "# scope is one of: global, zone, tag, cidr, host; ports is a port or a range such as 8000-8100.\n"
    "# A segmentation rule's mode is deny, only or allow, about its vantage_points (names).\n"
)
RULE_KEYS = {"id", "decision", "scope", "zone", "tag", "cidr", "host", "protocol", "ports", "justification"}
OPTIONAL_KEYS = {"owner", "ticket", "expires"}
MAX_RULES = 100_000


class BaselineError(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# --- export ---------------------------------------------------------------------------


def export_text() -> str:
    from reach import segmentation_baseline  # noqa: PLC0415 - reach builds on inventory

    rules = PortRule.objects.select_related("zone", "tag", "host__zone")
    entries = sorted((_entry(rule) for rule in rules), key=sort_key)
    document = {"version": VERSION, "rules": entries}
    # Only when there are any: without segmentation rules the file is what it was before they existed.
    segmentation_entries = segmentation_baseline.export_entries()
    if segmentation_entries:
        document[segmentation_baseline.KEY] = segmentation_entries
    return HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def _entry(rule: PortRule) -> dict:
    return scoped_entry(rule, {"id": str(rule.public_id), "decision": rule.decision})


def scoped_entry(rule: ScopedRule, entry: dict) -> dict:
    """``entry`` (the rule's own keys) followed by what every rule scoped like a port rule has."""
    entry["scope"] = rule.scope
    if rule.scope == RuleScope.ZONE:
        entry["zone"] = rule.zone.name
    elif rule.scope == RuleScope.TAG:
        entry["tag"] = rule.tag.name
    elif rule.scope == RuleScope.CIDR:
        entry["cidr"] = rule.cidr
    elif rule.scope == RuleScope.HOST:
        entry["host"] = {"zone": rule.host.zone.name, "address": rule.host.address}
    entry["protocol"] = rule.protocol
    entry["ports"] = rule.port_start if rule.port_start == rule.port_end else f"{rule.port_start}-{rule.port_end}"
    entry["justification"] = rule.justification
    if getattr(rule, "listen_on", ""):
        entry["listen_on"] = rule.listen_on
    if rule.owner:
        entry["owner"] = rule.owner
    if rule.ticket:
        entry["ticket"] = rule.ticket
    if rule.expires_at:
        entry["expires"] = rule.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return entry


def sort_key(entry: dict) -> tuple:
    where = entry.get("zone") or entry.get("tag") or entry.get("cidr") or ""
    if "host" in entry:
        where = f"{entry['host']['zone']}/{entry['host']['address']}"
    ports = str(entry["ports"]).split("-")
    return (SCOPE_RANK[RuleScope(entry["scope"])], where, entry["protocol"], int(ports[0]), int(ports[-1]), entry["id"])


# --- import ---------------------------------------------------------------------------


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)
    # Counts of the segmentation rules; None: the file does not list them (they were left alone).
    segmentation: "Counts | None" = None


def import_text(text: str, *, actor=None, keep_missing: bool = False, dry_run: bool = False) -> ImportResult:
    """Make the port rules what ``text`` says. Raises BaselineError, writing nothing, if any rule is bad."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BaselineError([f"The file is not valid YAML: {error}"]) from None
    if (
        not isinstance(document, dict)
        or document.get("version") != VERSION
        or not isinstance(document.get("rules"), list)
    ):
        raise BaselineError([f"Expected a mapping with 'version: {VERSION}' and a 'rules' list."])
    unknown = set(document) - {"version", "rules", "segmentation"}
    if unknown:
        raise BaselineError([f"Unknown top-level keys: {', '.join(sorted(map(str, unknown)))}."])
    entries = document["rules"]
    if len(entries) > MAX_RULES:
        raise BaselineError([f"At most {MAX_RULES} rules per file."])
    problems: list[str] = []
    wanted: list[PortRule] = []
    seen_ids: set[uuid.UUID] = set()
    for index, entry in enumerate(entries, start=1):
        try:
            rule = _rule_from(entry)
        except ValidationError as error:
            problems.extend(f"rule {index}: {message}" for message in error.messages)
            continue
        if rule.public_id in seen_ids:
            problems.append(f"rule {index}: the id {rule.public_id} is used twice.")
            continue
        seen_ids.add(rule.public_id)
        wanted.append(rule)
    from reach import segmentation_baseline  # noqa: PLC0415 - reach builds on inventory

    segmentation_wanted = None
    if segmentation_baseline.KEY in document:
        segmentation_wanted, more = segmentation_baseline.read(document[segmentation_baseline.KEY])
        problems.extend(more)
    if problems:
        raise BaselineError(problems)

    result = ImportResult()
    with transaction.atomic():
        # Every rule this import may rewrite or delete is locked before its first audit entry locks
        # the log's head: the order every audited write takes (see inventory.audit.record_delete).
        rules = PortRule.objects.select_related("zone", "tag", "host__zone").select_for_update(of=("self",))
        existing = {rule.public_id: rule for rule in rules}
        if segmentation_wanted is not None:
            segmentation_baseline.lock_rules()
        touched: list[PortRule] = []
        for rule in wanted:
            if rule.tag is not None and rule.tag.pk is None:
                rule.tag = _tag_named(rule.tag.name)
            old = existing.get(rule.public_id)
            if old is None:
                rule.created_by = actor if getattr(actor, "pk", None) else None
                rule.save()
                audit.record(actor, "rule.create", rule, summary="baseline import", after=audit.snapshot(rule))
                result.created += 1
                touched.append(rule)
            elif _entry(old) != _entry(rule):
                before = audit.snapshot(old)
                rule.pk, rule.created_by_id, rule.created_at = old.pk, old.created_by_id, old.created_at
                rule.save()
                audit.record(
                    actor, "rule.update", rule, summary="baseline import", before=before, after=audit.snapshot(rule)
                )
                result.updated += 1
                touched.extend([old, rule])
            else:
                result.unchanged += 1
        if not keep_missing:
            for public_id, old in existing.items():
                if public_id not in seen_ids:
                    audit.record(actor, "rule.delete", old, summary="baseline import", before=audit.snapshot(old))
                    old.delete()
                    old.pk = None
                    result.removed += 1
                    touched.append(old)
        if touched:
            policy.rule_changed(*touched)
        if segmentation_wanted is not None:
            result.segmentation = segmentation_baseline.apply(
                segmentation_wanted, actor=actor, keep_missing=keep_missing, get_tag=_tag_named
            )
        audit.record(
            actor,
            "baseline.import",
            object_type="baseline",
            summary=(
                f"{result.created} created, {result.updated} updated, {result.removed} removed, "
                f"{result.unchanged} unchanged."
                + (f" Segmentation rules: {result.segmentation}." if result.segmentation else "")
            ),
        )
        if dry_run:
            transaction.set_rollback(True)
    return result


def _tag_named(name: str) -> Tag:
    """A tag a rule of the file names, created when the file is applied (not while it is checked)."""
    return Tag.objects.get_or_create(name=name)[0]


def _rule_from(entry) -> PortRule:
    public_id = entry_id(entry, RULE_KEYS | OPTIONAL_KEYS | {"listen_on"}, ("decision",))
    decision = str(entry["decision"])
    if decision not in Decision.values:
        raise ValidationError(f"'decision' must be one of {', '.join(Decision.values)}.")
    try:
        listen_on = binds.normalised(str(entry.get("listen_on") or ""))
    except binds.BindSpecError as error:
        raise ValidationError(f"'listen_on': {error}.") from None
    rule = PortRule(public_id=public_id, decision=decision, listen_on=listen_on)
    read_scoped(entry, rule)
    return rule


def entry_id(entry, allowed: set, required: tuple) -> uuid.UUID:
    """The id of a scoped rule's entry, once it is a mapping of ``allowed`` keys with the
    ``required`` ones and those every scoped rule needs; ValidationError with what is wrong."""
    if not isinstance(entry, dict):
        raise ValidationError("each rule must be a mapping of keys to values.")
    unknown = set(entry) - allowed
    if unknown:
        raise ValidationError(f"unknown keys: {', '.join(sorted(map(str, unknown)))}.")
    for key in ("id", *required, "scope", "protocol", "ports", "justification"):
        if key not in entry:
            raise ValidationError(f"'{key}' is missing.")
    try:
        return uuid.UUID(str(entry["id"]))
    except ValueError:
        raise ValidationError(f"'id' {str(entry['id'])[:40]!r} is not a UUID.") from None


def read_scoped(entry: dict, rule: ScopedRule) -> None:
    """Fill ``rule`` with the scope, protocol, ports, justification, owner, ticket and expiry of
    ``entry``; ValidationError with what is wrong. Checks the rule (``full_clean``) too."""
    scope, protocol = (str(entry[key]) for key in ("scope", "protocol"))
    if scope not in RuleScope.values:
        raise ValidationError(f"'scope' must be one of {', '.join(RuleScope.values)}.")
    if protocol not in {value for value, _ in RULE_PROTOCOL_CHOICES}:
        raise ValidationError("'protocol' must be tcp, udp, sctp or any.")
    rule.scope, rule.protocol = scope, protocol
    rule.port_start, rule.port_end = _ports(entry["ports"])
    rule.justification = str(entry["justification"]).strip()
    rule.owner = str(entry.get("owner") or "")
    rule.ticket = str(entry.get("ticket") or "")
    rule.expires_at = _expiry(entry.get("expires"))
    if not rule.justification:
        raise ValidationError("'justification' is empty: say why.")
    scope_keys = {"zone", "tag", "cidr", "host"} & set(entry)
    needed = {RuleScope.GLOBAL: set(), RuleScope.ZONE: {"zone"}, RuleScope.TAG: {"tag"}}
    needed |= {RuleScope.CIDR: {"cidr"}, RuleScope.HOST: {"host"}}
    if scope_keys != needed[RuleScope(scope)]:
        wanted = ", ".join(sorted(needed[RuleScope(scope)])) or "none of zone, tag, cidr, host"
        raise ValidationError(f"a {scope} rule takes {wanted}.")
    if scope == RuleScope.ZONE:
        rule.zone = Zone.objects.filter(name=str(entry["zone"])).first()
        if rule.zone is None:
            raise ValidationError(f"there is no zone {str(entry['zone'])[:63]!r}; create it first.")
    elif scope == RuleScope.TAG:
        name = str(entry["tag"]).strip().lower()
        # A new tag is created when the file is applied, not while it is checked.
        rule.tag = Tag.objects.filter(name=name).first() or Tag(name=name)
        rule.tag.full_clean(validate_unique=False)
    elif scope == RuleScope.CIDR:
        rule.cidr = str(entry["cidr"])
    elif scope == RuleScope.HOST:
        host = entry["host"]
        if not isinstance(host, dict) or set(host) != {"zone", "address"}:
            raise ValidationError("'host' takes a zone and an address.")
        rule.host = Host.objects.filter(zone__name=str(host["zone"]), address=str(host["address"])).first()
        if rule.host is None:
            raise ValidationError(f"no known host {host['address']} in zone {host['zone']}; scan it first.")
    exclude = ["specificity", "public_id", "created_by"]
    if rule.tag is not None and rule.tag.pk is None:
        exclude.append("tag")
    rule.full_clean(exclude=exclude, validate_unique=False)


def _ports(value) -> tuple[int, int]:
    text = str(value).strip()
    first, _, last = text.partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        raise ValidationError(f"'ports' {text[:20]!r} is not a port or a range such as 8000-8100.")
    start, end = int(first), int(last or first)
    if not 1 <= start <= end <= 65535:
        raise ValidationError(f"'ports' {text!r} must lie within 1-65535, lowest first.")
    return start, end


def _expiry(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            example = "2027-01-31T00:00:00Z"
            raise ValidationError(f"'expires' {str(value)[:40]!r} is not a date such as {example}.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
