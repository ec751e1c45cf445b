"""Set the provider up: its tables, a signing key, people with groups, and PortWatch as a client.

python -m tests.oidc_idp.prepare REDIRECT_URI   (IDP_DATABASE names the SQLite file)
"""

import os
import sys

import django


def main(redirect_uri: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.oidc_idp.settings")
    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from oidc_provider.models import Client, ResponseType

    call_command("migrate", verbosity=0)
    call_command("creatersakey")
    for username, password, groups in PEOPLE:
        user = User.objects.create_user(username, f"{username}@idp.test", password, first_name=username.title())
        for name in groups:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
    client = Client.objects.create(
        name="PortWatch",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        client_type="confidential",
        require_consent=False,
        _redirect_uris=redirect_uri,
        jwt_alg="RS256",
    )
    client.response_types.add(ResponseType.objects.get(value="code"))


CLIENT_ID = "portwatch"
CLIENT_SECRET = "portwatch-client-secret"
PEOPLE = [
    ("olga", "olga-pass-1", ["secops"]),  # reviewer
    ("otto", "otto-pass-2", ["secops-leads", "staff"]),  # admin
    ("oscar", "oscar-pass-3", ["staff"]),  # no PortWatch group
]

if __name__ == "__main__":
    main(sys.argv[1])
