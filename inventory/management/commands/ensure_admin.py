"""Create the first admin account on a fresh installation, once."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from inventory import audit
from portwatch.roles import GROUP_NAMES, Role


class Command(BaseCommand):
    help = "Create an admin account if no account exists yet, and print its password once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        User = get_user_model()
        if User.objects.exists():
            self.stdout.write(
                "An account already exists; no admin account was created. A forgotten password: "
                "python3 manage.py changepassword USERNAME sets a new one."
            )
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password)
            user.groups.add(Group.objects.get(name=GROUP_NAMES[Role.ADMIN]))
            audit.record(None, "user.create", user, summary="First admin account, created by manage.py ensure_admin.")
        self.stdout.write(
            self.style.SUCCESS("Created the first admin account (this password is shown only once):")
            + f"\n    username: {username}\n    password: {password}\n"
            + "Change it after logging in (account menu -> Change password); if it is lost, "
            + f"python3 manage.py changepassword {username} sets a new one."
        )
