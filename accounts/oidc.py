"""OpenID Connect logins (mozilla-django-oidc), configured from the environment.

``accounts.oidc_settings`` turns ``OIDC_*`` variables into
mozilla-django-oidc's settings. ``ProviderBackend`` is its backend with PortWatch's
rules: the role comes from a claim (``groups`` by default) at every login,
nobody without a role gets in, people are matched by ``preferred_username``
(never by e-mail address, which another account may share), and a login
never takes over a local account. ``start`` and ``callback`` are its views,
open to visitors who are not logged in (they are how one logs in).
"""

import logging

from django.conf import settings
from django.core.validators import ValidationError
from django.http import Http404

logger = logging.getLogger(__name__)


def _as_set(value) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {value}
    return {str(item) for item in value} if isinstance(value, (list, tuple)) else {str(value)}


try:
    from mozilla_django_oidc.auth import OIDCAuthenticationBackend
    from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView
except ImportError:  # the optional requirements
    OIDCAuthenticationBackend = object
    OIDCAuthenticationCallbackView = OIDCAuthenticationRequestView = None


class ProviderBackend(OIDCAuthenticationBackend):
    def get_or_create_user(self, access_token, id_token, payload):
        # Models and roles are ready by the time anyone logs in.
        from django.contrib.auth import get_user_model  # noqa: PLC0415

        from accounts import sso  # noqa: PLC0415
        from portwatch.roles import Role  # noqa: PLC0415

        claims = self.get_userinfo(access_token, id_token, payload)
        memberships = _as_set(claims.get(settings.OIDC_ROLE_CLAIM))
        role = sso.role_for(memberships, settings.PORTWATCH_OIDC_ROLE_VALUES)
        username = self._username(claims)
        if role == Role.NONE or not username:
            logger.warning("OpenID Connect login of %r refused: no PortWatch role in its claims", username or "?")
            return None
        model = get_user_model()
        user = model.objects.filter(username=username).first()
        if user is None:
            user = model(username=username)
            user.set_unusable_password()
        sso.refuse_local_account(user, "OpenID Connect")
        user.email = str(claims.get("email") or "")[:254]
        user.first_name = str(claims.get("given_name") or "")[:150]
        user.last_name = str(claims.get("family_name") or "")[:150]
        user.save()
        sso.apply(user, role, "OpenID Connect")
        return user

    @staticmethod
    def _username(claims) -> str:
        from django.contrib.auth.validators import UnicodeUsernameValidator  # noqa: PLC0415

        for claim in ("preferred_username", "sub"):
            candidate = str(claims.get(claim) or "")[:150]
            try:
                UnicodeUsernameValidator()(candidate)
            except ValidationError:
                continue
            if candidate:
                return candidate
        return ""


def _enabled() -> None:
    if not getattr(settings, "OIDC_ENABLED", False) or OIDCAuthenticationRequestView is None:
        raise Http404("Single sign-on through OpenID Connect is not configured.")


def start(request):
    """Off to the provider (with ?next=, where to land after)."""
    _enabled()
    return OIDCAuthenticationRequestView.as_view()(request)


def callback(request):
    """Back from the provider: logged in (audited like every login), or sent to the login page saying why not."""
    from portwatch import lockouts  # noqa: PLC0415

    _enabled()
    response = OIDCAuthenticationCallbackView.as_view()(request)
    if request.user.is_authenticated:
        lockouts.record_success(request, request.user)
    return response
