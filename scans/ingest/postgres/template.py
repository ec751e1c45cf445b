"""SQL templates filled with names and values from the models, once, at import.

The set-based engine's statements name tables and compare columns with
choice values. Spelt out by hand (``inventory_service``, ``'open'``), a
renamed table or a changed choice would fail only when the statement runs,
or, worse, quietly match nothing. The templates name them instead:
``{Service}`` is Service's table, ``{PortState.OPEN}`` the quoted value of
that member, ``{StagedRow.HOST}`` a staging row's kind, ``{STATE_CHANGE_KINDS}``
the list of kinds that count toward flapping (the ORM engine's too). ``sql()`` fills
them in when the module that holds the template is imported, so a name that
no longer exists stops PortWatch from starting instead of failing a scan.

Only names and values from the code are filled in this way (each checked to
be a plain word); anything from a scan or a user travels as a psycopg
parameter (``%(name)s``). Literal braces are doubled (``'{{}}'::jsonb``).

Every filled template is kept in ``TEMPLATES``: ``tests/test_ingest_sql.py``
holds each quoted literal to the enum of the column it is compared with, and
fails on a table named by hand.
"""

import re
from enum import Enum

from django.db import models

from inventory.choices import HostStatus, PolicyStatus, PortState
from inventory.models import Host, ProbedPortSet, Service
from scans.choices import STATE_CHANGE_KINDS, ChangeKind
from scans.ingest.postgres.copy_rows import StagedRow
from scans.models import Change, StagedPort

# Models whose tables the statements name, and enums whose values they compare with.
MODELS = (Host, Service, ProbedPortSet, Change, StagedPort)
ENUMS = (PortState, HostStatus, PolicyStatus, ChangeKind, StagedRow)

_WORD = re.compile(r"[A-Za-z0-9_]+").fullmatch


class _Table:
    """``{Model}``: the model's table."""

    def __init__(self, model: type[models.Model]):
        self.model = model

    def __format__(self, spec: str) -> str:
        return _checked(self.model._meta.db_table)


class _Values:
    """``{Enum.MEMBER}``: the member's value as a quoted SQL literal."""

    def __init__(self, enum: type[Enum]):
        self.enum = enum

    def __getattr__(self, member: str) -> str:
        return f"'{_checked(str(self.enum[member].value))}'"


def _checked(word: str) -> str:
    if not _WORD(word):
        raise ValueError(f"{word!r} is not a plain word: it cannot be written into SQL")
    return word


def _value_list(members) -> str:
    """``{STATE_CHANGE_KINDS}``: a group of members as an SQL list, ``('a', 'b')``."""
    return "(" + ", ".join(f"'{_checked(str(member.value))}'" for member in members) + ")"


NAMESPACE = (
    {model.__name__: _Table(model) for model in MODELS}
    | {enum.__name__: _Values(enum) for enum in ENUMS}
    | {"STATE_CHANGE_KINDS": _value_list(STATE_CHANGE_KINDS)}
)

# name -> (template, filled SQL), for the tests.
TEMPLATES: dict[str, tuple[str, str]] = {}


def sql(name: str, template: str) -> str:
    """Fill ``template`` with the tables and values it names; keep both under ``name``."""
    filled = template.format_map(NAMESPACE)
    TEMPLATES[name] = (template, filled)
    return filled
