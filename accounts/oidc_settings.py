"""mozilla-django-oidc's settings from the environment (``OIDC_*``): read by portwatch/settings.py.

Apart from accounts.oidc (the backend and views), which Django's auth models
are imported by: the settings load before the apps are ready.
"""

from django.core.exceptions import ImproperlyConfigured

from portwatch.env import env_list, env_str

# Role names, not portwatch.roles.Role: the settings import this module before Django's apps are ready.
ROLE_VARIABLES = {"admin": "OIDC_ADMIN_VALUES", "reviewer": "OIDC_REVIEWER_VALUES", "viewer": "OIDC_VIEWER_VALUES"}
ENDPOINTS = (
    "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "OIDC_OP_TOKEN_ENDPOINT",
    "OIDC_OP_USER_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT",
)


def settings_from_environment() -> dict:
    try:
        import mozilla_django_oidc  # noqa: F401, PLC0415 - only to say what to install
    except ImportError:
        raise ImproperlyConfigured(
            "OIDC_RP_CLIENT_ID is set but mozilla-django-oidc is not installed: "
            ".venv/bin/pip install -r requirements-sso.txt"
        ) from None
    missing = [name for name in ("OIDC_RP_CLIENT_SECRET", *ENDPOINTS) if not env_str(name)]
    if missing:
        raise ImproperlyConfigured(f"OIDC_RP_CLIENT_ID is set: set {', '.join(missing)} too (your provider's values).")
    values = {role: env_list(variable) for role, variable in ROLE_VARIABLES.items()}
    if not any(values.values()):
        raise ImproperlyConfigured(
            "OIDC_RP_CLIENT_ID is set but no claim value gives a role: set OIDC_VIEWER_VALUES, "
            "OIDC_REVIEWER_VALUES and/or OIDC_ADMIN_VALUES (several: separated by commas)."
        )
    return {
        "OIDC_ENABLED": True,
        "OIDC_PROVIDER_NAME": env_str("OIDC_PROVIDER_NAME", "single sign-on"),
        "OIDC_RP_CLIENT_ID": env_str("OIDC_RP_CLIENT_ID"),
        "OIDC_RP_CLIENT_SECRET": env_str("OIDC_RP_CLIENT_SECRET"),
        **{name: env_str(name) for name in ENDPOINTS},
        "OIDC_RP_SIGN_ALGO": env_str("OIDC_RP_SIGN_ALGO", "RS256"),
        "OIDC_RP_SCOPES": env_str("OIDC_RP_SCOPES", "openid email profile groups"),
        "OIDC_ROLE_CLAIM": env_str("OIDC_ROLE_CLAIM", "groups"),
        "OIDC_TIMEOUT": 10,
        "OIDC_USE_PKCE": True,
        "LOGIN_REDIRECT_URL_FAILURE": "/login/?sso=failed",
        "PORTWATCH_OIDC_ROLE_VALUES": values,
    }
