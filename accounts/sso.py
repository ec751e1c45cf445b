"""What every single sign-on (LDAP, OpenID Connect) does once it knows who logged in: the role, and the audit.

A directory's groups (or an identity provider's claims) map to PortWatch's
roles; the user's role groups are set to the one it maps to, at every login,
so a role taken away in the directory is gone at the next login. Role changes
go to the audit log, and each login says which way it came in. API tokens
belong to the user, so they keep working for people who log in through the
directory.
"""

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction

from inventory import audit
from portwatch.roles import GROUP_NAMES, Role, role_of


def role_for(memberships: set[str], mapping: dict[str, list[str]]) -> Role:
    """The highest role (mapping: role name -> its groups' DNs, or claim values) that ``memberships``
    gives, compared case-insensitively."""
    held = {item.lower() for item in memberships}
    granted = [Role[name.upper()] for name, groups in mapping.items() if held & {group.lower() for group in groups}]
    return max(granted, default=Role.NONE)


def refuse_local_account(user, source: str) -> None:
    """A directory login must never take over an account with a local password of the same name."""
    if user.pk is not None and user.has_usable_password():
        raise PermissionDenied(f"{user.get_username()} is a local account: {source} logins cannot use it.")


def apply(user, role: Role, source: str) -> None:
    """Give ``user`` exactly ``role`` (their role groups replaced), audited when it changed.

    (The login itself is audited as every login is: portwatch.lockouts.record_success.)"""
    with transaction.atomic():
        before = role_of(user)
        if before != role or user.is_superuser:
            role_groups = Group.objects.filter(name__in=GROUP_NAMES.values())
            user.groups.remove(*role_groups)
            if role != Role.NONE:
                user.groups.add(Group.objects.get(name=GROUP_NAMES[role]))
            if user.is_superuser:  # a directory says what the role is: no superuser above it
                user.is_superuser = user.is_staff = False
                user.save(update_fields=["is_superuser", "is_staff"])
            user.__dict__.pop("_portwatch_role", None)
            audit.record(
                None,
                "user.role_from_directory",
                user,
                object_repr=user.get_username(),
                summary=f"role set by {source} at login",
                before={"role": before.label},
                after={"role": role.label},
            )
