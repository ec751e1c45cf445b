"""Import a scan file: manage.py import_nmap scan.xml [--zone NAME] [--vantage NAME].

nmap XML, masscan XML (-oX) and masscan JSON (-oJ, -oD) are accepted; the
format is read from the file."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inventory.models import Zone
from reach.models import VantagePoint
from scans.ingest.imports import import_scan_file
from scans.nmap_xml import NmapXmlError


class Command(BaseCommand):
    help = (
        "Import a scan file into the inventory of a zone: nmap XML (nmap -oX) or masscan's "
        "XML (-oX) or JSON (-oJ, -oD). A masscan file closes nothing: only what it found counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--zone", default=None, help="Zone the hosts belong to (default: the default zone).")
        parser.add_argument(
            "--vantage",
            default=None,
            help="Where the scan was run from (default: the zone's home, whose view is the inventory's).",
        )

    def handle(self, *args, file: Path, zone: str | None, vantage: str | None, **options):
        if not file.is_file():
            raise CommandError(f"{file} is not a file.")
        size = file.stat().st_size
        if size > settings.IMPORT_MAX_BYTES:
            raise CommandError(
                f"{file} is {size / 1048576:.1f} MB; imports are limited to "
                f"{settings.IMPORT_MAX_BYTES / 1048576:.0f} MB (IMPORT_MAX_BYTES). Nothing was imported."
            )
        if zone is None:
            target_zone = Zone.default()
        else:
            target_zone = Zone.objects.filter(name=zone).first()
            if target_zone is None:
                raise CommandError(f"No such zone: {zone}.")
        point = None
        if vantage is not None:
            point = VantagePoint.objects.filter(name=vantage).first()
            if point is None:
                raise CommandError(f"No such vantage point: {vantage}. Nothing was imported.")
        try:
            with open(file, "rb") as source:
                run = import_scan_file(source, zone=target_zone, vantage=point, name=file.name, path=str(file))
        except NmapXmlError as error:
            raise CommandError(f"{file}: {error} Nothing was imported.") from None
        changes = run.changes.count()
        concluded = " (masscan: nothing closed, only what it found counts)" if run.is_masscan else ""
        seen_from = "" if run.from_home else f" as seen from {run.vantage}"
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {file.name}{seen_from}: {run.hosts_total} host(s), {run.hosts_up} up, "
                f"{changes} change(s){concluded}."
            )
        )
