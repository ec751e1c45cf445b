"""API tokens from the command line: what the account page and /api/tokens/ do.

    python3 manage.py api_token list
    python3 manage.py api_token create USERNAME [--service-account ROLE] [--user NAME]
    python3 manage.py api_token revoke USERNAME [--user NAME]

``create`` prints the key alone on standard output, once (``TOKEN=$(python3
manage.py api_token create prometheus --service-account viewer)``); an
account that had a token gets a new one and the old key is refused from then
on. ``--service-account ROLE`` first creates the account if it does not
exist, with that role and no password (it cannot log in to the pages).
Every change is audited as the acting ``--user`` (an admin) or as PortWatch
itself; the key never is.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from inventory import audit
from portwatch.account import issue_token, revoke_token
from portwatch.commands import acting_user
from portwatch.roles import GROUP_NAMES, Role, role_of

BY = "manage.py api_token"
ROLES = {role.label: role for role in GROUP_NAMES}


class Command(BaseCommand):
    help = "List who has an API token, create one (the key is printed once) or revoke one."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True, metavar="{list,create,revoke}")
        commands.add_parser("list", help="Who has a token, with their role and since when (never the key).")
        create = commands.add_parser("create", help="Create or replace USERNAME's token; prints the key once.")
        create.add_argument("username")
        create.add_argument(
            "--service-account",
            choices=sorted(ROLES),
            metavar="ROLE",
            help="Create the account first if it does not exist, with this role (viewer, reviewer or admin) and "
            "no password.",
        )
        create.add_argument("--user", help="Record the change in the audit log as this admin.")
        revoke = commands.add_parser("revoke", help="Revoke USERNAME's token: requests with it are refused.")
        revoke.add_argument("username")
        revoke.add_argument("--user", help="Record the change in the audit log as this admin.")

    def handle(self, *args, command, **options):
        if command == "list":
            return self.list()
        actor = acting_user(options.get("user"), Role.ADMIN)
        if command == "create":
            return self.create(options["username"], options.get("service_account"), actor)
        return self.revoke(options["username"], actor)

    def list(self):
        tokens = list(Token.objects.select_related("user").order_by("user__username"))
        width = max((len(token.user.get_username()) for token in tokens), default=8)
        for token in tokens:
            role = role_of(token.user).label
            self.stdout.write(f"{token.user.get_username():<{width}}  {role:<8}  {token.created:%Y-%m-%d %H:%M %Z}")

    def create(self, username: str, service_account: str | None, actor):
        owner = get_user_model().objects.filter(username=username).first()
        with transaction.atomic():
            if owner is None and service_account:
                owner = self._service_account(username, ROLES[service_account], actor)
            elif owner is None:
                raise CommandError(
                    f"There is no user {username!r}. Add --service-account viewer (or reviewer, admin) to create "
                    "an account for a script."
                )
            elif not owner.is_active:
                raise CommandError(f"{username} is deactivated: a token would be refused.")
            elif service_account and role_of(owner) != ROLES[service_account]:
                raise CommandError(
                    f"{username} exists with the {role_of(owner).label} role; this command does not change roles."
                )
            token, replaced = issue_token(owner, actor, by=BY)
        role = role_of(owner)
        if replaced:
            self.stderr.write(f"Replaced {username}'s API token: the old key is refused from now on.")
        self.stderr.write(f"The API token of {username} ({role.label} role), shown only this once:")
        if role == Role.NONE:
            self.stderr.write(f"{username} has no role: every request with this token is refused until it has one.")
        self.stdout.write(token.key)

    def _service_account(self, username: str, role: Role, actor):
        user = get_user_model()(username=username)
        user.set_unusable_password()
        try:
            user.full_clean(exclude=["password"])
        except ValidationError as error:
            raise CommandError(f"{username!r}: {' '.join(error.messages)}") from None
        user.save()
        user.groups.add(Group.objects.get(name=GROUP_NAMES[role]))
        audit.record(actor, "user.create", user, summary=f"Service account ({role.label} role), created by {BY}.")
        self.stderr.write(f"Created the service account {username} ({role.label} role, no password).")
        return user

    def revoke(self, username: str, actor):
        owner = get_user_model().objects.filter(username=username).first()
        if owner is None:
            raise CommandError(f"There is no user {username!r}.")
        if not revoke_token(owner, actor, by=BY):
            raise CommandError(f"{username} has no API token.")
        self.stdout.write(f"Revoked {username}'s API token: requests with it are refused from now on.")
