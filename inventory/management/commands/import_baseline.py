import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from inventory.baseline import BaselineError, import_text
from reach import segmentation_writes


class Command(BaseCommand):
    help = (
        "Make the port rules (and the segmentation rules, if the file lists them) what a YAML baseline says "
        "(see export_baseline): rules are matched by id; rules missing from the file are removed unless "
        "--keep-missing. Nothing is written if any rule is bad."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The YAML file, or - for standard input.")
        parser.add_argument("--keep-missing", action="store_true", help="Keep rules that the file does not list.")
        parser.add_argument("--dry-run", action="store_true", help="Check and count, then write nothing.")
        parser.add_argument("--user", help="Record the changes in the audit log as this user.")

    def handle(self, *args, file, keep_missing=False, dry_run=False, user=None, **options):
        actor = None
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"There is no user {user!r}.")
        try:
            text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()  # noqa: SIM115
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}.") from None
        try:
            result = import_text(text, actor=actor, keep_missing=keep_missing, dry_run=dry_run)
        except BaselineError as error:
            raise CommandError("The baseline was not applied:\n  " + "\n  ".join(error.problems)) from None
        prefix = "Dry run, nothing written: would have " if dry_run else ""
        if result.segmentation is None:
            segmentation = "Segmentation rules: not in the file, left as they are."
        else:
            segmentation = f"Segmentation rules: {result.segmentation}."
            if not dry_run:
                # Whoever runs the command waits for it: the violations are worked out here, not by a worker.
                segmentation_writes.settle()
        self.stdout.write(
            f"{prefix}{result.created} created, {result.updated} updated, {result.removed} removed, "
            f"{result.unchanged} unchanged. {segmentation}"
        )
