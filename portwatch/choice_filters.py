"""``ModelChoiceFilter`` whose select reads its few choices with one plain query.

Django's ``ModelChoiceIterator`` reads a choice field's queryset with
``.iterator()``, which on PostgreSQL is a server-side cursor (django/django
#7587): ``DECLARE ... WITH HOLD``, ``FETCH``, ``CLOSE`` for a four-row zone
list or a twenty-row tag list, on every list page that offers them as
filters. The choices of a filter are a screenful at most, so this one reads
them as a list: the same options, one statement. (Turning server-side
cursors off for the whole connection would instead make the exports hold a
million rows in memory.)
"""

import django_filters
from django.forms.models import ModelChoiceIterator
from django_filters import fields


class _ListedChoices(ModelChoiceIterator):
    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset.all():  # a plain query, not iterator()'s server-side cursor
            yield self.choice(obj)


class ListedChoiceIterator(fields.ModelChoiceIterator, _ListedChoices):
    """django-filter's iterator (its null choice) over the choices read as a list."""


class ListedModelChoiceField(fields.ModelChoiceField):
    iterator = ListedChoiceIterator


class ModelChoiceFilter(django_filters.ModelChoiceFilter):
    field_class = ListedModelChoiceField
