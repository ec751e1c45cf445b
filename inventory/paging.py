"""Keyset pages: a page starts after the last row of the page before, never at an OFFSET.

``OFFSET 500000`` reads and throws away half a million rows, and ``COUNT(*)``
reads them all; at a million hosts either costs more than the page. A page
here is found by its position in the list's order instead: the "Next" link
carries the sort values of the last row shown (a *cursor*), and the next page
is the rows that come after those values. With an index on the order, every
page costs the same, the first or the ten-thousandth.

How "after" is asked. The order is a list of keys (the queryset's
``order_by``, plus the primary key when the keys are not unique). The rows
after a cursor ``(v1, v2, v3)`` are, in order, the rows with ``k1 = v1, k2 =
v2, k3 > v3``, then ``k1 = v1, k2 > v2``, then ``k1 > v1``: one query per
*segment*, each an equality prefix plus one range on an index's columns, run
until the page is full (``_segments``). PostgreSQL serves each one from the
sort's index whatever the mix of directions (``-risk, address``), which a
single ``a > x OR (a = x AND b > y)`` condition does not get (it is a filter
over the index, read from the start of the list: the cost of OFFSET again).
Trailing keys of one direction make one segment, a row comparison
(``(created_at, id) < (x, y)``: one index range on PostgreSQL, Django's OR
chain on SQLite), so the changes feed is one query a page. Most pages take
one or two queries; none takes more than one per key.

NULLs sort last in either direction (a host that never changed comes after
those that did); a nullable key adds an ``IS NULL`` segment.

"Previous" runs the same with every key reversed and reverses the rows.

The cursor is URL-safe base64 of JSON: the values, the direction, and a
fingerprint of the order, so a cursor from another sort is refused. Nothing
in it is secret (the values are on the page it came from); what matters is
that a forged one can only be refused, never reach the database as a type it
does not expect (each value is checked against its field).
"""

import base64
import binascii
import datetime
import hashlib
import json
import uuid
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import BadRequest, ImproperlyConfigured, ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.expressions import OrderBy
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.utils.dateparse import parse_date, parse_datetime

CURSOR_PARAM = "cursor"
# A real cursor is a few dozen characters; refuse to decode a megabyte.
MAX_CURSOR_LENGTH = 1000
INVALID_CURSOR = (
    "This page link is no longer valid (the list's order changed, or the link was altered). "
    "Start again from the first page."
)


class InvalidCursor(BadRequest):
    def __init__(self, message: str = INVALID_CURSOR):
        super().__init__(message)


@dataclass(frozen=True)
class Key:
    """One column of the order: its name in ``order_by``, direction, and where NULLs go."""

    name: str
    descending: bool
    field: models.Field
    nullable: bool
    nulls_first: bool = False  # only when reversed: NULLs are last in every declared order

    def reversed(self) -> "Key":
        return Key(self.name, not self.descending, self.field, self.nullable, not self.nulls_first)

    def order(self, known_not_null: bool = False):
        """The ORDER BY term; a plain one where no NULL can occur, so that an index matches it."""
        if not self.nullable or known_not_null:
            return f"-{self.name}" if self.descending else self.name
        expression = F(self.name)
        return OrderBy(
            expression,
            descending=self.descending,
            nulls_first=self.nulls_first or None,
            nulls_last=not self.nulls_first or None,
        )

    def beyond(self, value) -> Q:
        return Q(**{f"{self.name}__{'lt' if self.descending else 'gt'}": value})

    def equal(self, value) -> Q:
        return Q(**{f"{self.name}__isnull": True}) if value is None else Q(**{self.name: value})


@dataclass
class Page:
    """One page of rows, and the cursors of its neighbours (None: no such page)."""

    object_list: list
    next_cursor: str | None
    previous_cursor: str | None

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None


# --- the order ----------------------------------------------------------------------


def keys_of(queryset) -> list[Key]:
    """The queryset's order as keys, made total with the primary key where needed."""
    query = queryset.query
    terms = list(query.order_by) or (list(query.get_meta().ordering) if query.default_ordering else [])
    if not terms:
        raise ImproperlyConfigured(f"Keyset pages need an ordered queryset ({query.model.__name__} has no order).")
    keys = [_key(queryset, term) for term in terms]
    if not _unique(queryset, keys):
        pk = query.get_meta().pk
        keys.append(Key("pk", keys[-1].descending, pk, nullable=False))
    return keys


def _key(queryset, term) -> Key:
    if isinstance(term, OrderBy) and isinstance(term.expression, F):
        name, descending = term.expression.name, term.descending
    elif isinstance(term, str) and term and term != "?":
        name, descending = term.lstrip("-"), term.startswith("-")
    else:
        raise ImproperlyConfigured(f"Keyset pages order by named columns, not {term!r}.")
    annotation = queryset.query.annotations.get(name)
    if annotation is not None:
        return Key(name, descending, annotation.output_field, nullable=True)
    opts, nullable, parts = queryset.query.get_meta(), False, name.split("__")
    for position, part in enumerate(parts):
        field = opts.pk if part == "pk" else opts.get_field(part)
        nullable = nullable or field.null
        if field.is_relation and position < len(parts) - 1:
            opts = field.related_model._meta
        elif field.is_relation:
            # Django orders a relation named this way by the related model's
            # own ordering; the column itself is the key here.
            parts[position] = field.attname
    return Key("__".join(parts), descending, field, nullable)


def _unique(queryset, keys: list[Key]) -> bool:
    """Whether no two rows share the keys' values, so the order is total without the primary key."""
    query = queryset.query
    if query.values_select and query.group_by is not None:
        # A grouped values() query, one row per group: the grouped columns identify a row.
        return set(query.values_select) <= {key.name for key in keys}
    # Columns of the row itself that are never NULL (a unique column admits many NULLs).
    own = {key.name: key.field for key in keys if not key.nullable and "__" not in key.name}
    if any(field.primary_key or field.unique for field in own.values()):
        return True
    opts = query.get_meta()
    columns = {field.attname for field in own.values()}
    return any(
        isinstance(constraint, models.UniqueConstraint)
        and constraint.fields
        and constraint.condition is None
        and {opts.get_field(name).attname for name in constraint.fields} <= columns
        for constraint in opts.constraints
    )


def fingerprint(keys: list[Key]) -> str:
    text = ",".join(("-" if key.descending else "") + key.name for key in keys)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# --- the rows after a position -----------------------------------------------------------


def _segments(keys: list[Key], values: list | None):
    """(condition, order) pairs whose rows follow ``values`` (the start: None), in the list's order."""
    if values is None:
        first, rest = keys[0], keys[1:]
        rest_order = [key.order() for key in rest]
        if not first.nullable or first.nulls_first == first.descending:
            # One query. (A nullable key whose NULLs fall where PostgreSQL's
            # index keeps them, above every value, needs no split either.)
            yield Q(), [first.order(), *rest_order]
            return
        not_null = (Q(**{f"{first.name}__isnull": False}), [first.order(known_not_null=True), *rest_order])
        null = (Q(**{f"{first.name}__isnull": True}), rest_order)
        yield from (null, not_null) if first.nulls_first else (not_null, null)
        return
    # The trailing keys that share a direction and hold no NULL are one
    # segment: a row comparison, ``(created_at, id) < (x, y)``, which
    # PostgreSQL reads as one range of an index on them (elsewhere Django
    # writes it as the equivalent OR chain).
    run = len(keys) - 1
    while run > 0 and not keys[run - 1].nullable and keys[run - 1].descending == keys[-1].descending:
        run -= 1
    if keys[-1].nullable:
        run = len(keys)
    # Deepest first: rows equal on more of the keys come sooner.
    for depth in reversed(range(min(run + 1, len(keys)))):
        prefix = Q()
        for key, value in zip(keys[:depth], values[:depth], strict=True):
            prefix &= key.equal(value)
        if depth == run and len(keys) - run > 1:
            tail = keys[run:]
            compare = TupleLessThan if tail[0].descending else TupleGreaterThan
            yield prefix & compare(Tuple(*[F(key.name) for key in tail]), values[run:]), [k.order() for k in tail]
            continue
        key, value, rest = keys[depth], values[depth], keys[depth + 1 :]
        rest_order = [other.order() for other in rest]
        by_value = [key.order(known_not_null=True), *rest_order]
        if value is None:
            # After a NULL: every value when NULLs come first, nothing when they come last.
            if key.nulls_first:
                yield prefix & Q(**{f"{key.name}__isnull": False}), by_value
            continue
        yield prefix & key.beyond(value), by_value
        if key.nullable and not key.nulls_first:
            yield prefix & Q(**{f"{key.name}__isnull": True}), rest_order


def _rows_after(queryset, keys: list[Key], values: list | None, limit: int) -> list:
    rows: list = []
    for condition, order in _segments(keys, values):
        rows.extend(queryset.filter(condition).order_by(*order)[: limit - len(rows)])
        if len(rows) >= limit:
            break
    return rows


def page_of(queryset, cursor: str | None, per_page: int = 100) -> Page:
    """The page at ``cursor`` (None or "": the first page), fetching one row more than it shows."""
    keys = keys_of(queryset)
    backward, values = decode(cursor, keys) if cursor else (False, None)
    if backward:
        rows = _rows_after(queryset, [key.reversed() for key in keys], values, per_page + 1)
        if len(rows) > per_page:
            shown = rows[:per_page][::-1]
            return Page(
                shown, encode(keys, row_values(keys, shown[-1]), False), encode(keys, row_values(keys, shown[0]), True)
            )
        # Back at the start: the first page, whole (rows may have come or gone meanwhile).
        values = None
    rows = _rows_after(queryset, keys, values, per_page + 1)
    shown = rows[:per_page]
    following = encode(keys, row_values(keys, shown[-1]), False) if len(rows) > per_page else None
    previous = None
    if values is not None:
        # Past the end (the rows after the cursor went away): back from the cursor itself.
        previous = encode(keys, row_values(keys, shown[0]) if shown else values, True)
    return Page(shown, following, previous)


# --- cursors ------------------------------------------------------------------------------


def row_values(keys: list[Key], row) -> list:
    """A row's values of the keys (a model instance, or a dict of a values() query)."""
    values = []
    for key in keys:
        value = row
        for part in [key.name] if isinstance(row, dict) else key.name.split("__"):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
            if value is None:
                break
        values.append(value)
    return values


def _to_json(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def encode(keys: list[Key], values: list, backward: bool) -> str:
    payload = {"o": fingerprint(keys), "v": [_to_json(value) for value in values]}
    if backward:
        payload["b"] = 1
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cursor: str, keys: list[Key]) -> tuple[bool, list]:
    """(backward, values) of a cursor made by ``encode`` for these keys; InvalidCursor for anything else."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor
    try:
        text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
        payload = json.loads(text)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor from None
    if (
        not isinstance(payload, dict)
        or set(payload) - {"o", "v", "b"}
        or payload.get("o") != fingerprint(keys)
        or payload.get("b", 0) not in (0, 1)
        or not isinstance(payload.get("v"), list)
        or len(payload["v"]) != len(keys)
    ):
        raise InvalidCursor
    return bool(payload.get("b")), [_checked(key, value) for key, value in zip(keys, payload["v"], strict=True)]


def _checked(key: Key, value):
    """The JSON value as the key's field takes it, or InvalidCursor: a forged value never reaches SQL unchecked."""
    if value is None:
        if not key.nullable:
            raise InvalidCursor
        return None
    # A relation's column holds the referenced key (a host_id is the host's id).
    field = key.field.target_field if key.field.is_relation else key.field
    try:
        if isinstance(field, models.BooleanField):
            if not isinstance(value, bool):
                raise InvalidCursor
        elif isinstance(field, (models.IntegerField, models.AutoField)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidCursor
        elif isinstance(field, models.DateTimeField):
            value = parse_datetime(value) if isinstance(value, str) else None
            if value is None or value.tzinfo is None:
                raise InvalidCursor
            return value
        elif isinstance(field, models.DateField):
            value = parse_date(value) if isinstance(value, str) else None
            if value is None:
                raise InvalidCursor
            return value
        elif isinstance(field, (models.CharField, models.TextField, models.GenericIPAddressField, models.UUIDField)):
            if not isinstance(value, str) or "\x00" in value:
                raise InvalidCursor
        else:
            raise ImproperlyConfigured(f"Keyset pages do not order by a {type(field).__name__} ({key.name}).")
        value = field.to_python(value)
        field.run_validators(value)
    except (ValidationError, ValueError, TypeError, OverflowError):
        raise InvalidCursor from None
    return value


# --- list pages ------------------------------------------------------------------------


def page_for(request, queryset, per_page: int = 100) -> Page:
    """The page a list shows: ``?cursor=``. An old ``?page=N`` bookmark (pages
    were numbered once) gets the first page and a note, not an OFFSET."""
    if request.GET.get("page") not in (None, "", "1"):
        messages.info(request, "Pages are no longer numbered: this is the first page; follow “Next →” from here.")
    return page_of(queryset, request.GET.get(CURSOR_PARAM), per_page)


class KeysetPaginationMixin:
    """For a ListView with ``paginate_by``: keyset pages in ``page_obj``, no COUNT(*) (includes/pagination.html)."""

    def paginate_queryset(self, queryset, page_size):
        page = page_for(self.request, queryset, page_size)
        return None, page, page.object_list, page.has_previous or page.has_next
