"""Import an nmap XML file: manage.py import_nmap scan.xml [--zone NAME]."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inventory.models import Zone
from scans.imports import import_nmap_xml
from scans.nmap_xml import NmapXmlError


class Command(BaseCommand):
    help = "Import an nmap XML file (nmap -oX) into the inventory of a zone."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--zone", default=None, help="Zone the hosts belong to (default: the default zone).")

    def handle(self, *args, file: Path, zone: str | None, **options):
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
        try:
            with open(file, "rb") as source:
                run = import_nmap_xml(source, zone=target_zone, name=file.name, path=str(file))
        except NmapXmlError as error:
            raise CommandError(f"{file}: {error} Nothing was imported.") from None
        changes = run.changes.count()
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {file.name}: {run.hosts_total} host(s), {run.hosts_up} up, {changes} change(s)."
            )
        )
