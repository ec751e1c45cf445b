"""Read-only serializers that list a hundred rows without DRF's per-field machinery.

For each field of each row, DRF's ``Serializer.to_representation`` walks the
field's source through a generic ``get_attribute`` (a ``Mapping`` check, a
callable check, exception handling) and each date-time field looks the
current time zone up again. On the API's lists (a hundred rows of twenty
fields) that was about half of a request's CPU time under load.

``FastRead`` keeps DRF's semantics and takes shortcuts only where they give
the same result (tests/test_api_fast_read.py compares both on every list
serializer it is mixed into, relations missing included):

- a source that is a chain of plain attributes is read with ``getattr``;
  anything unusual on the way (a mapping, a callable, a missing relation, an
  error) sends that field back through DRF's own ``get_attribute``, which
  applies the field's default, ``allow_null`` and error handling;
- an aware ``datetime`` of an ISO 8601 field is converted to the time zone
  read once per serializer (DRF reads it per value: the same zone within a
  request), then written as DRF writes it;
- everything else is the field's own ``to_representation``.
"""

from collections.abc import Mapping
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.fields import SkipField
from rest_framework.relations import ManyRelatedField, PKOnlyObject, RelatedField
from rest_framework.settings import api_settings

_PLAIN = 0  # a chain of attributes, then the field's to_representation
_DATETIME = 1  # the same, and an ISO 8601 date-time
_DRF = 2  # DRF's own get_attribute and to_representation


class _Unusual(Exception):
    """The shortcut does not apply to this value: DRF's path does."""


def _kind(field) -> int:
    # Related fields read a primary key without loading the row (PKOnlyObject): DRF's way.
    if field.source == "*" or not field.source_attrs or isinstance(field, (RelatedField, ManyRelatedField)):
        return _DRF
    if isinstance(field, serializers.DateTimeField):
        output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
        if isinstance(output_format, str) and output_format.lower() == ISO_8601 and not hasattr(field, "timezone"):
            return _DATETIME
        return _DRF
    return _PLAIN


def _walk(instance, attrs):
    value = instance
    for attr in attrs:
        if isinstance(value, Mapping):
            raise _Unusual
        try:
            value = getattr(value, attr)
        except (AttributeError, ObjectDoesNotExist):
            raise _Unusual from None
        if callable(value):
            raise _Unusual
    return value


def _iso(value: datetime, zone) -> str:
    text = value.astimezone(zone).isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


class FastRead:
    """Mix into a read-only ``Serializer`` (before it): the same output, less per-field work."""

    def to_representation(self, instance):
        plan = self.__dict__.get("_fast_plan")
        if plan is None:
            plan = self.__dict__["_fast_plan"] = [
                (field.field_name, field, field.source_attrs, _kind(field)) for field in self._readable_fields
            ]
            self.__dict__["_fast_zone"] = timezone.get_current_timezone() if settings.USE_TZ else None
        zone = self.__dict__["_fast_zone"]
        ret = {}
        for name, field, attrs, kind in plan:
            if kind != _DRF:
                try:
                    value = _walk(instance, attrs)
                except _Unusual:
                    pass
                else:
                    if value is None:
                        ret[name] = None
                        continue
                    if (
                        kind == _DATETIME
                        and type(value) is datetime
                        and zone is not None
                        and value.utcoffset() is not None
                    ):
                        try:
                            ret[name] = _iso(value, zone)
                            continue
                        except OverflowError:  # DRF's error for it, below
                            pass
                    ret[name] = field.to_representation(value)
                    continue
            # DRF's Serializer.to_representation, for this field.
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            check_for_none = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            ret[name] = None if check_for_none is None else field.to_representation(attribute)
        return ret
