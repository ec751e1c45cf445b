"""A token for hosts to post their reports with: manage.py listener_reporter NAME [--revoke]."""

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from listeners.api import REPORTER_GROUP


class Command(BaseCommand):
    help = (
        "Create (or show) a reporter: a user that may post host reports to /api/host-reports/ and nothing else, "
        "and print its API token for the hosts' cron jobs. --revoke deletes its token."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="e.g. reporter-dc1: one per group of hosts, to revoke them apart.")
        parser.add_argument(
            "--revoke", action="store_true", help="Delete the reporter's token (a new one on the next run)."
        )

    def handle(self, *args, name: str, revoke: bool, **options):
        with transaction.atomic():
            user = User.objects.filter(username=name).first()
            if revoke:
                if user is None:
                    raise CommandError(f"No user {name}.")
                deleted, _ = Token.objects.filter(user=user).delete()
                self.stdout.write(f"{name}: token {'revoked' if deleted else 'already absent'}.")
                return
            if user is None:
                user = User.objects.create_user(username=name)  # no password: it never logs in to the pages
            elif user.is_superuser or user.is_staff or user.groups.exclude(name=REPORTER_GROUP).exists():
                raise CommandError(f"{name} is a person's account with a role: choose another name for a reporter.")
            group, _ = Group.objects.get_or_create(name=REPORTER_GROUP)
            user.groups.add(group)
            token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
