"""Check the overview's kept counts against a recount, or count them again."""

from django.core.management.base import BaseCommand, CommandError

from tallies import maintenance


class Command(BaseCommand):
    help = (
        "check: compare every count the triggers keep with a full recount (exit 1 on a difference); "
        "rebuild: count them again from the inventory; compact: fold pending deltas now."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["check", "rebuild", "compact"])

    def handle(self, *args, action, **options):
        if action == "rebuild":
            maintenance.rebuild()
            self.stdout.write("Counted every figure again from the inventory.")
        elif action == "compact":
            folded = maintenance.compact()
            self.stdout.write("Another compaction is running." if folded < 0 else f"Folded {folded} row(s).")
        else:
            problems = maintenance.differences()
            if problems:
                for problem in problems:
                    self.stderr.write(f"DIFFERS: {problem}")
                raise CommandError(
                    f"{len(problems)} kept count(s) differ from a recount; "
                    "`python3 manage.py tallies rebuild` counts them again."
                )
            self.stdout.write("Every kept count equals a recount.")
