"""``manage.py certificates``: open ports' current certificates, expiring soonest first (as the Certificates page)."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from certs.choices import Finding
from certs.exports import certificate_row
from certs.filters import CertificateFilter
from certs.views import current_sightings
from inventory import exports
from inventory.models import Zone

FORMATS = ("text", "csv", "json")


class Command(BaseCommand):
    help = "List open ports' current certificates, expiring soonest first."

    def add_arguments(self, parser):
        parser.add_argument(
            "--expiring", type=int, metavar="DAYS", help="only those ending within DAYS days (expired ones included)"
        )
        parser.add_argument("--finding", choices=Finding.values, help="only those with this finding")
        parser.add_argument("--zone", help="only ports of this zone")
        parser.add_argument("-q", "--search", default="", help="subject or name contains")
        parser.add_argument("--format", choices=FORMATS, default="text")

    def handle(self, *args, expiring, finding, zone, search, format, **options):
        if expiring is not None and expiring < 0:
            raise CommandError(f"--expiring takes a number of days, 0 or more, not {expiring}.")
        if zone and not Zone.objects.filter(name=zone).exists():
            raise CommandError(f"No such zone: {zone}")
        # The page's own filters, so the command and the page cannot disagree.
        filtered = CertificateFilter(
            {"finding": finding or "", "zone": zone or "", "q": search}, queryset=current_sightings()
        )
        if not filtered.is_valid():
            raise CommandError(f"Bad filter: {filtered.errors.as_text()}")
        sightings = filtered.qs
        now = timezone.now()
        if expiring is not None:
            sightings = sightings.filter(not_after__lte=now + timedelta(days=expiring))
        rows = sightings.iterator(chunk_size=exports.CHUNK)
        if format == "text":
            self._text(rows, now)
            return
        writer = exports.csv_lines if format == "csv" else exports.json_lines
        for piece in writer(rows, lambda sighting: certificate_row(sighting, now)):
            self.stdout.write(piece, ending="")

    def _text(self, rows, now) -> None:
        count = 0
        for sighting in rows:
            row = certificate_row(sighting, now)
            where = f"{row['address']} {row['port']}/{row['protocol']} ({row['zone']})"
            self.stdout.write(
                f"{row['not_after'][:10]}  {row['days_left']:>5}d  {_printable(where):<40}  "
                f"{_printable(row['subject'])}  [{row['findings'] or 'ok'}]"
            )
            count += 1
        self.stderr.write(f"{count} certificate(s).")


def _printable(text: str) -> str:
    # Text from scanned hosts: no terminal control sequences.
    return "".join(character if character.isprintable() else "?" for character in str(text))
