"""LDAP and Active Directory logins (django-auth-ldap), configured from the environment.

``settings_from_environment()`` turns ``LDAP_*`` variables into
django-auth-ldap's settings (portwatch/settings.py calls it when
LDAP_SERVER_URI is set); ``DirectoryBackend`` is its backend with PortWatch's
rules on top: only members of a role's groups may log in, the role follows
the groups at every login, and a directory login never uses a local account.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

try:
    import ldap
    from django_auth_ldap import config as ldap_config
    from django_auth_ldap.backend import LDAPBackend
    from django_auth_ldap.config import LDAPGroupQuery, LDAPSearch
except ImportError:  # the optional requirements: pip install -r requirements-sso.txt
    ldap = None
    LDAPBackend = object

from portwatch.env import env_bool, env_str

# LDAP_GROUP_TYPE -> (the filter that finds such groups, the name of django-auth-ldap's type)
GROUP_TYPES = {
    "groupOfNames": ("(objectClass=groupOfNames)", "GroupOfNamesType"),
    "groupOfUniqueNames": ("(objectClass=groupOfUniqueNames)", "GroupOfUniqueNamesType"),
    "posixGroup": ("(objectClass=posixGroup)", "PosixGroupType"),
    "activeDirectory": ("(objectClass=group)", "ActiveDirectoryGroupType"),
    "nestedActiveDirectory": ("(objectClass=group)", "NestedActiveDirectoryGroupType"),
}
# Role names, not portwatch.roles.Role: the settings import this module before Django's apps are ready.
ROLE_VARIABLES = {"admin": "LDAP_ADMIN_GROUPS", "reviewer": "LDAP_REVIEWER_GROUPS", "viewer": "LDAP_VIEWER_GROUPS"}


def _dns(name: str) -> list[str]:
    # DNs hold commas: a list of them is separated by semicolons.
    return [dn.strip() for dn in env_str(name).split(";") if dn.strip()]


def role_groups() -> dict[str, list[str]]:
    return {role: _dns(variable) for role, variable in ROLE_VARIABLES.items()}


def settings_from_environment() -> dict:
    if ldap is None:
        raise ImproperlyConfigured(
            "LDAP_SERVER_URI is set but django-auth-ldap is not installed: "
            "apt-get install libldap2-dev libsasl2-dev && .venv/bin/pip install -r requirements-sso.txt"
        )
    groups = role_groups()
    if not any(groups.values()):
        raise ImproperlyConfigured(
            "LDAP_SERVER_URI is set but no directory group gives a role: set LDAP_VIEWER_GROUPS, "
            "LDAP_REVIEWER_GROUPS and/or LDAP_ADMIN_GROUPS to group DNs (several: separated by ';')."
        )
    group_type = env_str("LDAP_GROUP_TYPE", "groupOfNames")
    if group_type not in GROUP_TYPES:
        raise ImproperlyConfigured(f"LDAP_GROUP_TYPE={group_type!r}: use one of {', '.join(GROUP_TYPES)}.")
    group_filter, type_name = GROUP_TYPES[group_type]
    group_base = env_str("LDAP_GROUP_SEARCH_BASE")
    if not group_base:
        raise ImproperlyConfigured("LDAP_GROUP_SEARCH_BASE must name where the directory's groups are.")
    options = {ldap.OPT_NETWORK_TIMEOUT: 5, ldap.OPT_TIMEOUT: 10, ldap.OPT_REFERRALS: 0}
    ca_file = env_str("LDAP_CA_CERT_FILE")
    if ca_file:
        options[ldap.OPT_X_TLS_CACERTFILE] = ca_file
        options[ldap.OPT_X_TLS_NEWCTX] = 0
    required = None
    for dn in (dn for dns in groups.values() for dn in dns):
        required = LDAPGroupQuery(dn) if required is None else required | LDAPGroupQuery(dn)
    config = {
        "AUTH_LDAP_SERVER_URI": env_str("LDAP_SERVER_URI"),
        "AUTH_LDAP_BIND_DN": env_str("LDAP_BIND_DN"),
        "AUTH_LDAP_BIND_PASSWORD": env_str("LDAP_BIND_PASSWORD"),
        "AUTH_LDAP_START_TLS": env_bool("LDAP_START_TLS", False),
        "AUTH_LDAP_CONNECTION_OPTIONS": options,
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(group_base, ldap.SCOPE_SUBTREE, group_filter),
        "AUTH_LDAP_GROUP_TYPE": getattr(ldap_config, type_name)(),
        # Only members of a group that gives a role may log in at all.
        "AUTH_LDAP_REQUIRE_GROUP": required,
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
        "PORTWATCH_LDAP_ROLE_GROUPS": groups,
    }
    template = env_str("LDAP_USER_DN_TEMPLATE")
    if template:
        config["AUTH_LDAP_USER_DN_TEMPLATE"] = template
    else:
        base = env_str("LDAP_USER_SEARCH_BASE")
        if not base:
            raise ImproperlyConfigured("Set LDAP_USER_SEARCH_BASE (or LDAP_USER_DN_TEMPLATE) to find people.")
        user_filter = env_str("LDAP_USER_FILTER", "(uid=%(user)s)")
        config["AUTH_LDAP_USER_SEARCH"] = LDAPSearch(base, ldap.SCOPE_SUBTREE, user_filter)
    return config


class DirectoryBackend(LDAPBackend):
    """django-auth-ldap's backend; the role from the directory's groups at every login (accounts.sso)."""

    # accounts.sso reads the models: imported when a login happens, not when the
    # settings import this module (before the apps are ready).
    def get_or_build_user(self, username, ldap_user):
        from accounts import sso  # noqa: PLC0415

        user, built = super().get_or_build_user(username, ldap_user)
        sso.refuse_local_account(user, "directory")
        return user, built

    def authenticate_ldap_user(self, ldap_user, password):
        from accounts import sso  # noqa: PLC0415

        user = super().authenticate_ldap_user(ldap_user, password)
        if user is not None:
            role = sso.role_for(set(ldap_user.group_dns), settings.PORTWATCH_LDAP_ROLE_GROUPS)
            sso.apply(user, role, "the directory")
        return user
