"""Check the audit log's hash chain; exit 1 and name the entries if it was tampered with."""

from django.core.management.base import BaseCommand, CommandError

from inventory import audit


class Command(BaseCommand):
    help = "Verify that no audit entry was altered, removed or inserted (the hash chain is intact)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--head",
            metavar="HASH",
            help="the head hash recorded earlier outside PortWatch; also checks the log still reaches it",
        )

    def handle(self, *args, head=None, **options):
        count, problems = audit.verify()
        current = audit.head_hash()
        if head and head != current and not audit.chain_contains(head):
            problems.append(audit.Problem(None, f"the recorded head {head} is no longer in the chain"))
        if problems:
            for problem in problems:
                self.stderr.write(f"TAMPERED: {problem}")
            raise CommandError(f"The audit log is not intact: {len(problems)} problem(s) in {count} entries.")
        self.stdout.write(f"The audit log is intact: {count} entries, head {current}.")
