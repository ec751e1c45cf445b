"""Print a remote vantage point's key, for its scanners' PORTWATCH_SCANNER_KEY (admins, on the centre)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from inventory import audit
from reach.models import VantagePoint, new_key


class Command(BaseCommand):
    help = "Print the key a remote vantage point's scanners sign with (--remote makes it remote, --rotate a new key)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The vantage point.")
        parser.add_argument("--remote", action="store_true", help="Make it a remote vantage point first.")
        parser.add_argument(
            "--rotate", action="store_true", help="A new key: scanners holding the old one are refused from now on."
        )

    def handle(self, *args, name, remote, rotate, **options):
        with transaction.atomic():
            vantage = VantagePoint.objects.select_for_update().filter(name=name).first()
            if vantage is None:
                raise CommandError(f"No such vantage point: {name}.")
            if not vantage.remote and not remote:
                raise CommandError(
                    f"{name} is not a remote vantage point: its workers use the database. "
                    "Add --remote to make its scanners remote (run_scanner)."
                )
            changed = []
            if not vantage.remote:
                vantage.remote = True
                changed.append("made remote")
            if rotate or not vantage.key:
                vantage.key = new_key()
                changed.append("new key")
            if changed:
                vantage.save(update_fields=["remote", "key"])
                audit.record(None, "vantage.key", vantage, summary=f"manage.py scanner_key: {', '.join(changed)}.")
        self.stdout.write(vantage.key)
