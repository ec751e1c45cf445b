"""Roles: viewer (read), reviewer (decide on ports), admin (configure).

A role is membership of the Django group of the same name; superusers are
admins. Roles are ordered, so a reviewer can do everything a viewer can. An
authenticated user in no group has no role and gets 403 on every page.
"""

from enum import IntEnum
from functools import wraps

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import PermissionDenied


class Role(IntEnum):
    NONE = 0
    VIEWER = 1
    REVIEWER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


# Group name for each role; the groups are created by a migration.
GROUP_NAMES = {Role.VIEWER: "viewer", Role.REVIEWER: "reviewer", Role.ADMIN: "admin"}
_ROLE_BY_GROUP = {name: role for role, name in GROUP_NAMES.items()}


def role_of(user) -> Role:
    """The user's highest role, cached on the user object for the request."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Role.NONE
    cached = getattr(user, "_portwatch_role", None)
    if cached is not None:
        return cached
    if user.is_superuser:
        role = Role.ADMIN
    else:
        names = user.groups.values_list("name", flat=True)
        role = max((_ROLE_BY_GROUP.get(name, Role.NONE) for name in names), default=Role.NONE)
    user._portwatch_role = role
    return role


def has_role(user, role: Role) -> bool:
    return role_of(user) >= role


class RoleRequiredMixin(AccessMixin):
    """Class-based views declare the least role that may use them."""

    required_role = Role.VIEWER

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if not has_role(request.user, self.required_role):
            raise PermissionDenied(f"This page needs the {self.required_role.label} role.")
        return super().dispatch(request, *args, **kwargs)


def role_required(role: Role):
    """The same check for function views."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, role):
                raise PermissionDenied(f"This page needs the {role.label} role.")
            return view(request, *args, **kwargs)

        wrapped.required_role = role
        return wrapped

    return decorator


def role_context(request):
    """Templates show or hide actions by role; the views still enforce it."""
    role = role_of(getattr(request, "user", None))
    return {
        "user_role": role,
        "can_review": role >= Role.REVIEWER,
        "can_admin": role >= Role.ADMIN,
    }
