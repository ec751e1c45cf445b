"""Scan profiles from the command line: what the Profiles page shows and saves.

    python3 manage.py profile list
    python3 manage.py profile add sweep-fast --name "Sweep fast" --kind fast_discovery --rate 20000 [--user NAME]

A new profile is checked by the page's form (``ScanProfileForm``: vetted
fields only, a fast-discovery rate within MASSCAN_MAX_RATE) and audited, as
the acting ``--user`` (an admin) or as PortWatch itself. A bad profile writes
nothing and exits with status 1.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portwatch.api.base import save_audited
from portwatch.commands import acting_user
from portwatch.roles import Role
from scans.choices import PortScope, ProfileKind, ScanType, Timing
from scans.constants import MASSCAN_DEFAULT_RATE, NSE_SCRIPT_ALLOWLIST
from scans.forms import ScanProfileForm
from scans.models import ScanProfile


class Command(BaseCommand):
    help = "List the scan profiles, or add one (as on the Profiles page)."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True, metavar="{list,add}")
        commands.add_parser("list", help="Every profile, with its kind and, for fast discovery, its rate.")
        add = commands.add_parser("add", help="Add a profile from vetted fields.")
        add.add_argument("slug", help="Short identifier, e.g. sweep-fast.")
        add.add_argument("--name", required=True)
        add.add_argument("--description", default="")
        add.add_argument("--kind", choices=ProfileKind.values, default=ProfileKind.NMAP)
        add.add_argument("--scan-type", choices=ScanType.values, default=ScanType.TCP)
        add.add_argument("--ports", choices=PortScope.values, default=None, help="Default ports: top or all.")
        add.add_argument("--top-ports", type=int, default=1000)
        add.add_argument("--version-detection", action="store_true")
        add.add_argument("--timing", choices=Timing.values, default=Timing.AGGRESSIVE)
        add.add_argument("--max-retries", type=int, default=2)
        add.add_argument("--script", action="append", default=[], choices=sorted(NSE_SCRIPT_ALLOWLIST))
        add.add_argument("--rate", type=int, default=MASSCAN_DEFAULT_RATE, help="Fast discovery: packets/s.")
        add.add_argument(
            "--no-host-discovery", action="store_true", help="Fast discovery: sweep every address on every port."
        )
        add.add_argument("--user", help="Record the change in the audit log as this admin.")

    def handle(self, *args, command, **options):
        if command == "list":
            return self.list()
        return self.add(options, acting_user(options.get("user"), Role.ADMIN))

    def list(self):
        for profile in ScanProfile.objects.all():
            how = profile.get_kind_display()
            if profile.is_fast_discovery:
                rate = min(profile.masscan_rate, settings.MASSCAN_MAX_RATE)
                how += f", {rate} packets/s" + (", live hosts only" if profile.discover_hosts else ", every address")
            self.stdout.write(f"{profile.slug:<20} {profile.name:<24} {how}{' (built-in)' if profile.builtin else ''}")

    def add(self, options, actor):
        fast = options["kind"] == ProfileKind.FAST_DISCOVERY
        data = {
            "name": options["name"],
            "slug": options["slug"],
            "description": options["description"],
            "kind": options["kind"],
            "scan_type": options["scan_type"],
            # masscan has no "most common ports": fast discovery defaults to all of them.
            "port_scope": options["ports"] or (PortScope.ALL if fast else PortScope.TOP),
            "top_ports": options["top_ports"],
            "version_detection": options["version_detection"],
            "timing": options["timing"],
            "max_retries": options["max_retries"],
            "scripts": options["script"],
            "masscan_rate": options["rate"],
            "discover_hosts": not options["no_host_discovery"],
        }
        form = ScanProfileForm({key: value for key, value in data.items() if value is not False})
        if not form.is_valid():
            problems = [f"{field}: {message}" for field, messages in form.errors.items() for message in messages]
            raise CommandError("Nothing was changed:\n  " + "\n  ".join(problems))
        profile = save_audited(actor, form, "profile")
        self.stdout.write(f"Profile added: {profile.slug} ({profile.get_kind_display()}).")
