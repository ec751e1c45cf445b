"""What PortWatch's management commands share: the user they act as (``--user NAME``)."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from portwatch.roles import Role, role_of


def acting_user(username: str | None, role: Role):
    """The user a command's changes are recorded as in the audit log, or None (PortWatch itself).

    The user must hold ``role``: the command does what that user could do on the page.
    """
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"There is no user {username!r}.")
    if role_of(user) < role:
        raise CommandError(f"{username} does not have the {role.label} role, which this change needs.")
    return user
