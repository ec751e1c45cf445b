"""Who is calling, and may they: token (or Bearer) authentication and the role permission.

Kept apart from ``base``: DRF imports these classes while it is itself being
imported (through its settings), so this module imports nothing but the
pieces of DRF they are built on.
"""

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission

from portwatch.api.throttle import TokenFailureThrottle
from portwatch.roles import Role, role_of

# --- authentication ---------------------------------------------------------------


class TokenOrBearerAuthentication(TokenAuthentication):
    """``Authorization: Token <key>`` or ``Authorization: Bearer <key>``; per-user, revocable keys.

    Bad tokens are counted per client address, here because DRF's throttle
    classes never see a request that failed authentication (``throttle``).
    """

    keywords = (b"token", b"bearer")

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in self.keywords:
            return None
        throttle = TokenFailureThrottle.for_request(request)
        throttle.check()
        try:
            return self._authenticate_key(parts)
        except exceptions.AuthenticationFailed:
            throttle.failed()
            raise

    def _authenticate_key(self, parts: list[bytes]):
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send the header as: Authorization: Token <key>.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token is not a valid key.") from None
        return self.authenticate_credentials(key)


# --- roles ------------------------------------------------------------------------


class RolePermission(BasePermission):
    """The least role for a request, declared on the view.

    ``read_role`` for safe methods, ``write_role`` for the others, and
    ``action_roles`` for named viewset actions (``{"cancel": Role.ADMIN}``).
    A view that declares nothing needs the viewer role for everything.
    """

    message = "This needs a role you do not have."

    def has_permission(self, request, view):
        needed = self.role_for(request, view)
        if role_of(request.user) >= needed:
            return True
        self.message = f"This needs the {needed.label} role."
        return False

    @staticmethod
    def role_for(request, view) -> Role:
        action = getattr(view, "action", None)
        action_roles = getattr(view, "action_roles", {})
        if action in action_roles:
            return action_roles[action]
        if request.method in SAFE_METHODS:
            return getattr(view, "read_role", Role.VIEWER)
        return getattr(view, "write_role", Role.ADMIN)
