"""``instance.get_FOO_display()`` for the fields a list shows on every row, without rebuilding the choices.

Django's ``get_FOO_display`` builds a dict of the field's choices (each one
through ``make_hashable``) on every call: a changes page of fifty rows
rebuilt the twenty-odd change kinds fifty times, and the risk badges their
severities, about a tenth of the page's time. ``display(instance, name)``
keeps that dict per model and field, and returns what ``get_FOO_display``
returns (tests/test_row_fastpaths.py compares them on every choice, on
values outside the choices and on empty ones); a value that is not a plain
string or number goes through ``get_FOO_display`` itself.
"""

from functools import cache

from django.utils.encoding import force_str
from django.utils.hashable import make_hashable


@cache
def _labels(model, name: str) -> dict:
    return dict(make_hashable(model._meta.get_field(name).flatchoices))


def display(instance, name: str) -> str:
    value = getattr(instance, name)
    if type(value) not in (str, int):
        return getattr(instance, f"get_{name}_display")()
    return force_str(_labels(type(instance), name).get(value, value), strings_only=True)
