"""List login lockouts, or unlock a username (from one address or all), with an audit entry each."""

import ipaddress

from axes.models import AccessAttempt
from django.core.management.base import BaseCommand, CommandError

from portwatch import lockouts


class Command(BaseCommand):
    help = (
        "Unlock a username locked out of logging in (from every address, or from --address), "
        "or list the lockouts with --list. Each unlock is written to the audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", help="the username typed at the login form")
        parser.add_argument("--address", help="unlock it from this client address only")
        parser.add_argument(
            "--list", action="store_true", dest="list_lockouts", help="list who is locked out now, and from where"
        )

    def handle(self, *args, username=None, address=None, list_lockouts=False, **options):
        if list_lockouts:
            for row in lockouts.current_lockouts():
                lockout = lockouts.as_lockout(row)
                until = lockout.until.isoformat() if lockout.until else "until unlocked"
                self.stdout.write(f"{lockout.username}\t{lockout.address or '-'}\t{lockout.failures}\t{until}")
            return
        if not username:
            raise CommandError("Name the username to unlock, or --list the lockouts.")
        if address:
            try:
                address = str(ipaddress.ip_address(address))
            except ValueError:
                raise CommandError(f"{address!r} is not an IP address.") from None
            addresses = [address]
        else:
            addresses = AccessAttempt.objects.filter(username=username).values_list("ip_address", flat=True).distinct()
        unlocked = [where for where in addresses if lockouts.unlock(None, username, where)]
        if not unlocked:
            self.stdout.write(f"{username} had no failed logins to forget.")
        for where in unlocked:
            self.stdout.write(f"Unlocked {username} from {where or 'an unknown address'}.")
