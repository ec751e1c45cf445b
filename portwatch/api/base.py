"""What every API endpoint shares: the token scheme, roles, pagination, errors, form-backed serializers.

Every endpoint needs a logged-in user (a token or a session) with a role, the
same roles as the pages: each viewset names the least role of its reads, of
its writes and of any extra action (``RolePermission``). Input is validated by
the same Django forms and services as the pages (``FormSerializer``), so the
API and the UI cannot disagree about what is valid.
"""

import logging

from django.core.exceptions import BadRequest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import ProtectedError
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from inventory import audit, paging
from portwatch.roles import Role

# --- schema: the token scheme ---------------------------------------------------------


class TokenOrBearerScheme(OpenApiAuthenticationExtension):
    target_class = "portwatch.api.auth.TokenOrBearerAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` or `Bearer <key>`; get a key on the API token page of your account.",
        }


# --- roles ------------------------------------------------------------------------


class RoleMixin:
    """The least role of a viewset's reads, writes and named actions (see ``auth.RolePermission``)."""

    read_role = Role.VIEWER
    write_role = Role.ADMIN
    action_roles: dict = {}


# --- pagination -------------------------------------------------------------------


class NoCountPagination(BasePagination):
    """Keyset pages (see ``inventory.paging``): ``next`` and ``previous`` carry a
    cursor, every page costs the same however deep, and nothing is counted.

    Pages are not numbered: ``page=1`` is the first page, any other number is
    refused (a client stepping through numbers would never reach the end).
    """

    page_size = 100
    max_page_size = 500
    cursor_query_param = paging.CURSOR_PARAM
    page_size_query_param = "page_size"

    def paginate_queryset(self, queryset, request, view=None):
        size = self._page_size(request)
        if request.query_params.get("page") not in (None, "", "1"):
            raise exceptions.ValidationError(
                {"page": ["Pages are not numbered: follow the `next` link (it carries a cursor)."]}
            )
        try:
            page = paging.page_of(queryset, request.query_params.get(self.cursor_query_param), per_page=size)
        except paging.InvalidCursor as error:
            raise exceptions.ValidationError({self.cursor_query_param: [str(error)]}) from None
        self.request, self.page = request, page
        return page.object_list

    def _page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw in (None, ""):
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return int(raw)

    def _link(self, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        url = remove_query_param(self.request.build_absolute_uri(), "page")
        return replace_query_param(url, self.cursor_query_param, cursor)

    def get_paginated_response(self, data):
        return Response(
            {
                "next": self._link(self.page.next_cursor),
                "previous": self._link(self.page.previous_cursor),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "in": "query",
                "required": False,
                "description": "Where the page starts: leave it out for the first page, then follow "
                "`next` and `previous`, which carry it (opaque; a cursor that was altered is a 400).",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "in": "query",
                "required": False,
                "description": f"Rows per page (default {self.page_size}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]


# --- errors -----------------------------------------------------------------------


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


logger = logging.getLogger(__name__)

# What two requests writing the same thing at the same moment get from the database, by SQLSTATE:
# validation passed for both, and the database refused the second. The request's transaction is
# rolled back, so nothing was written: a conflict to retry, not a server error.
SAME_MOMENT = {
    "23505": "This conflicts with a row another request wrote at the same moment (the same name, say). "
    "Nothing was saved; reload and try again.",
    "40P01": "Another change to the same data was made at the same moment. Nothing was saved; try again.",
    "40001": "Another change to the same data was made at the same moment. Nothing was saved; try again.",
}


def same_moment(error: Exception) -> str | None:
    """The message for a write refused because of a concurrent one, or None."""
    if not isinstance(error, (IntegrityError, OperationalError)):
        return None
    cause = error.__cause__
    state = getattr(cause, "sqlstate", None)  # psycopg
    if state is None and str(cause).startswith("UNIQUE constraint failed"):  # SQLite
        state = "23505"
    return SAME_MOMENT.get(state)


def exception_handler(error, context):
    """Django's own errors from forms and services read like DRF's."""
    if conflict := same_moment(error):
        logger.warning("%s: %s", conflict, error, exc_info=error)
        from rest_framework.views import set_rollback  # noqa: PLC0415 - import cycle

        set_rollback()
        return Response({"detail": conflict}, status=status.HTTP_409_CONFLICT)
    if isinstance(error, DjangoValidationError):
        error = exceptions.ValidationError({"detail": error.messages})
    elif isinstance(error, ProtectedError):
        names = sorted({str(obj) for obj in error.protected_objects})[:5]
        return Response(
            {"detail": f"In use by {', '.join(names)}; remove or change those first."}, status=status.HTTP_409_CONFLICT
        )
    elif isinstance(error, BadRequest):
        error = exceptions.ValidationError({"detail": [str(error)]})
    from rest_framework.views import exception_handler as drf_exception_handler  # noqa: PLC0415 - import cycle

    return drf_exception_handler(error, context)


# --- serializers backed by the pages' forms --------------------------------------


class FormSerializer(serializers.Serializer):
    """Declares the fields (for the schema and the output); the page's form validates.

    ``form_class`` is the ModelForm the page uses. DRF parses the JSON types
    first, then the form gets the values (on a partial update, the object's
    current values under the ones sent) and says what is wrong, in its own
    words. ``name_fields`` makes form fields that take a primary key take a
    name instead (``{"zone": "name"}``), the way the API shows them.
    """

    form_class = None
    name_fields: dict = {}

    def form_kwargs(self) -> dict:
        return {}

    def base_form_data(self) -> dict:
        """Values the form needs that this serializer does not show (see ScheduleSerializer)."""
        return {}

    def build_form(self, data):
        form = self.form_class(data=data, instance=self.instance, **self.form_kwargs())
        for field, key in self.name_fields.items():
            form.fields[field].to_field_name = key
        return form

    def to_internal_value(self, data):
        typed = super().to_internal_value(data)
        names = set(self.build_form({}).fields)
        merged = {name: value for name, value in self.base_form_data().items() if name in names}
        if self.instance is not None and self.partial:
            current = self.to_representation(self.instance)
            merged.update({name: value for name, value in current.items() if name in names})
        merged.update({name: value for name, value in typed.items() if name in names})
        form = self.build_form({name: _form_value(value) for name, value in merged.items()})
        if not form.is_valid():
            raise serializers.ValidationError(
                {
                    (field if field != "__all__" else "non_field_errors"): [error["message"] for error in errors]
                    for field, errors in form.errors.get_json_data().items()
                }
            )
        self.form = form
        return typed

    def create(self, validated_data):
        return self.save_form()

    def update(self, instance, validated_data):
        return self.save_form()

    def save_form(self):
        return self.form.save()


class RelatedIdsField(serializers.ListField):
    """Ids of related objects (a many-to-many): read from the manager, written as a list."""

    def __init__(self, *, key: str = "pk", **kwargs):
        self.key = key
        super().__init__(**kwargs)

    def to_representation(self, data):
        values = [getattr(item, self.key) for item in data.all()]
        return sorted(str(value) if not isinstance(value, int) else value for value in values)


def _form_value(value):
    """A JSON value as a form field reads it (forms take text, lists and booleans)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    if isinstance(value, bool):
        return value
    return str(value)


def save_audited(user, form, audit_name: str, snapshot=audit.snapshot):
    """What ``AuditedFormMixin`` does for a page: save, and log the change if there was one."""
    creating = form.instance._state.adding
    with transaction.atomic():
        before = None if creating else snapshot(audit.locked(form.instance))
        obj = form.save()
        after = snapshot(obj)
        if before != after:
            audit.record(user, f"{audit_name}.{'create' if creating else 'update'}", obj, before=before, after=after)
    return obj
