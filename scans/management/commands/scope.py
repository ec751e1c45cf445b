"""The scan scope from the command line: what the Scope page shows and changes.

    python3 manage.py scope list
    python3 manage.py scope allow 203.0.113.0/24 --reason "our public range" [--user NAME]
    python3 manage.py scope exclude 10.9.0.0/16 --reason "the payment network" [--user NAME]
    python3 manage.py scope remove 203.0.113.0/24 [--user NAME]

New rules are checked by the page's form (``ScopeRuleForm``) and every change
is audited, as the acting ``--user`` (an admin) or as PortWatch itself. A bad
rule writes nothing and exits with status 1; built-in exclusions
(link-local, cloud metadata) are never removed.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from portwatch.commands import acting_user
from portwatch.roles import Role
from scans import scope_rules
from scans.choices import ScopeAction
from scans.forms import ScopeRuleForm, canonical_network
from scans.models import ScopeRule

SUMMARY = "By manage.py scope."


class Command(BaseCommand):
    help = "List the scan scope, allow or exclude a network, or remove a rule (as on the Scope page)."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True, metavar="{list,allow,exclude,remove}")
        commands.add_parser("list", help="Every rule: allowed and excluded networks.")
        for action in ScopeAction:
            add = commands.add_parser(action.value, help=f"Add a rule: {action.label.lower()} a network.")
            add.add_argument("network", help="An address or a network, e.g. 203.0.113.0/24 or 2001:db8::/64.")
            add.add_argument("--reason", "--note", required=True, help="Why (shown on the Scope page).")
            add.add_argument("--user", help="Record the change in the audit log as this admin.")
        remove = commands.add_parser("remove", help="Remove the rule for a network (not a built-in exclusion).")
        remove.add_argument("network")
        remove.add_argument("--user", help="Record the change in the audit log as this admin.")

    def handle(self, *args, command, **options):
        if command == "list":
            return self.list()
        actor = acting_user(options.get("user"), Role.ADMIN)
        if command == "remove":
            return self.remove(options["network"], actor)
        return self.add(command, options["network"], options["reason"], actor)

    def list(self):
        rules = list(ScopeRule.objects.select_related("created_by"))
        width = max((len(rule.network) for rule in rules), default=7)
        for rule in rules:
            who = rule.created_by.get_username() if rule.created_by else ("built-in" if rule.locked else "")
            line = f"{rule.action:<8} {rule.network:<{width}}  {rule.reason}"
            self.stdout.write(f"{line}  ({who})" if who else line)

    def add(self, action: str, network: str, reason: str, actor):
        form = ScopeRuleForm({"network": network, "action": action, "reason": reason})
        if not form.is_valid():
            problems = [
                f"{field if field != '__all__' else 'rule'}: {message}"
                for field, messages in form.errors.items()
                for message in messages
            ]
            raise CommandError("Nothing was changed:\n  " + "\n  ".join(problems))
        try:
            rule = scope_rules.add_scope_rule(form, actor, summary=SUMMARY)
        except ValidationError as error:
            raise CommandError(f"Nothing was changed: {error.messages[0]}") from None
        self.stdout.write(f"Scope rule added: {rule.action} {rule.network}.")

    def remove(self, network: str, actor):
        try:
            canonical = canonical_network(network)
        except ValidationError as error:
            raise CommandError(error.messages[0]) from None
        rule = ScopeRule.objects.filter(network=canonical).first()
        if rule is None:
            raise CommandError(f"There is no scope rule for {canonical} (python3 manage.py scope list shows them).")
        try:
            scope_rules.remove_scope_rule(rule, actor, summary=SUMMARY)
        except scope_rules.ScopeRuleLocked as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Scope rule removed: {rule.action} {rule.network}.")
