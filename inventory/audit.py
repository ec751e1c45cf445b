"""The audit log: every decision and configuration change, hash-chained.

``record()`` appends an entry inside the caller's transaction, so an action
and its audit entry are written together or not at all. Appends lock the
single ``AuditHead`` row: they are serial, and each entry's ``prev_hash`` is
the hash of the one before it. ``verify()`` walks the chain and names the
first entry that does not fit (altered, removed, inserted or cut off).

On PostgreSQL a trigger also refuses UPDATE and DELETE on the table; the
chain is what proves that nobody went around it.
"""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.forms.models import model_to_dict
from django.http import Http404
from django.utils import timezone

from inventory.models import AuditEntry, AuditHead

GENESIS = "0" * 64
# Fields never copied into the log (secrets belong to no audience).
REDACTED_FIELDS = frozenset({"password", "secret", "token", "signing_secret"})


def snapshot(instance: models.Model | None, fields: list[str] | None = None) -> dict | None:
    """The instance's fields as plain JSON values (for ``before`` / ``after``)."""
    if instance is None:
        return None
    data = model_to_dict(instance, fields=fields)
    for name in list(data):
        if name in REDACTED_FIELDS:
            data[name] = "(redacted)"
        elif isinstance(data[name], list) and data[name] and isinstance(data[name][0], models.Model):
            data[name] = sorted(str(item.pk) for item in data[name])
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def locked(instance: models.Model, queryset=None) -> models.Model:
    """The row of ``instance`` as it is stored, locked until the transaction ends (call inside one).

    What an update reads its "before" from: a concurrent delete or update of
    the same row waits for this one, or came first. A row deleted meanwhile is
    a 404: saving the form would insert it again (Django's save() inserts when
    its UPDATE finds no row), resurrecting what someone just deleted.

    Deletes take it through ``record_delete``.
    """
    queryset = queryset if queryset is not None else type(instance)._default_manager.all()
    # of=self: a manager's select_related may join a nullable row, which FOR UPDATE cannot lock.
    current = queryset.select_for_update(of=("self",)).filter(pk=instance.pk).first()
    if current is None:
        raise Http404(f"This {instance._meta.verbose_name} was deleted meanwhile.")
    return current


def _content(entry: AuditEntry) -> dict:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": entry.actor_name,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "object_repr": entry.object_repr,
        "summary": entry.summary,
        "before": entry.before,
        "after": entry.after,
    }


def entry_hash(entry: AuditEntry, prev_hash: str) -> str:
    canonical = json.dumps(_content(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def record(
    actor,
    action: str,
    obj: models.Model | None = None,
    *,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    summary: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEntry:
    """Append one entry. ``actor`` is a user, or None for PortWatch itself."""
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1)
        entry = AuditEntry(
            seq=head.seq + 1,
            at=timezone.now(),
            actor=actor if getattr(actor, "pk", None) else None,
            actor_name=(actor.get_username() if getattr(actor, "pk", None) else "portwatch")[:150],
            action=action,
            object_type=object_type or (obj._meta.label_lower if obj is not None else ""),
            object_id=str(object_id or (obj.pk if obj is not None else ""))[:64],
            object_repr=(object_repr or (str(obj) if obj is not None else ""))[:255],
            summary=summary,
            # Stored as the JSON they are hashed as.
            before=json.loads(json.dumps(before, cls=DjangoJSONEncoder)),
            after=json.loads(json.dumps(after, cls=DjangoJSONEncoder)),
            prev_hash=head.hash,
        )
        entry.hash = entry_hash(entry, head.hash)
        entry.save()
        head.seq, head.hash = entry.seq, entry.hash
        head.save(update_fields=["seq", "hash"])
    return entry


def record_delete(actor, action: str, obj: models.Model, *, snapshot=snapshot, summary: str = "") -> models.Model:
    """Record the deletion of ``obj`` and return its row, locked: the caller deletes it in the same transaction.

    The row is locked before the entry locks the log's head, the order every
    audited update takes (``locked``, then ``record``). A delete that recorded
    first held the head while it waited for the row, and an update holding the
    row waited for the head: a deadlock (two API calls at once found it). A row
    deleted meanwhile is a 404, not a second entry.
    """
    row = locked(obj)
    record(actor, action, row, summary=summary, before=snapshot(row))
    return row


@dataclass(frozen=True)
class Problem:
    seq: int | None
    message: str

    def __str__(self):
        return f"entry #{self.seq}: {self.message}" if self.seq is not None else self.message


def verify() -> tuple[int, list[Problem]]:
    """Walk the whole chain; return (entries checked, problems found)."""
    problems: list[Problem] = []
    count, last_seq, last_hash = 0, 0, GENESIS
    for entry in _in_order():
        count += 1
        if entry.seq != last_seq + 1:
            problems.append(Problem(entry.seq, f"entries #{last_seq + 1} to #{entry.seq - 1} are missing"))
        if entry.prev_hash != last_hash:
            problems.append(
                Problem(entry.seq, "does not follow the entry before it (an entry was removed or inserted)")
            )
        if entry_hash(entry, entry.prev_hash) != entry.hash:
            problems.append(Problem(entry.seq, "its content does not match its hash (it was altered)"))
        last_seq, last_hash = entry.seq, entry.hash
    head = AuditHead.objects.filter(pk=1).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if (head_seq, head_hash) != (last_seq, last_hash):
        problems.append(
            Problem(None, f"the log ends at #{last_seq} but its head records #{head_seq}: entries were cut off the end")
        )
    return count, problems


def head_hash() -> str:
    head = AuditHead.objects.filter(pk=1).first()
    return head.hash if head else GENESIS


def _in_order() -> Iterator[AuditEntry]:
    return AuditEntry.objects.order_by("seq").iterator(chunk_size=2000)


def chain_contains(hash_: str) -> bool:
    return AuditEntry.objects.filter(hash=hash_).exists()


class AuditedFormMixin:
    """Create and update views: save the object and its audit entry together.

    ``audit_name`` names the object in actions (``zone`` -> ``zone.create``,
    ``zone.update``). An update that changed nothing is not recorded.
    """

    audit_name = ""

    def form_valid(self, form):
        creating = form.instance._state.adding
        with transaction.atomic():
            # The form already wrote the new values onto form.instance: read the old ones.
            before = None if creating else self.audit_snapshot(locked(form.instance))
            response = super().form_valid(form)
            after = self.audit_snapshot(self.object)
            if before != after:
                action = f"{self.audit_name}.{'create' if creating else 'update'}"
                record(self.request.user, action, self.object, before=before, after=after)
        return response

    def audit_snapshot(self, instance) -> dict | None:
        """What the log keeps of the object; views whose objects hold secrets narrow it."""
        return snapshot(instance)
