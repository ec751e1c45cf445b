"""Import a host's listening sockets: manage.py import_listeners FILE --host ADDRESS [--zone NAME] [--format NAME]."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from listeners import intake, reports
from listeners.choices import ReportSource
from listeners.parsing import FORMATS, ReportError


class Command(BaseCommand):
    help = (
        "Import a report of a host's listening sockets from the host's own tools: "
        + "; ".join(f"{name}: {made_by}" for name, made_by in FORMATS.items())
        + ". The format is read from the file unless given."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="The report ('-' reads standard input).")
        parser.add_argument("--host", required=True, help="The host's address, as the inventory has it.")
        parser.add_argument("--zone", default=None, help="The host's zone, when the address is in several.")
        parser.add_argument("--format", choices=sorted(FORMATS), default=None, help="Default: read from the file.")
        parser.add_argument(
            "--at", default=None, help="When the host took the report (ISO 8601 with a zone). Default: now."
        )

    def handle(self, *args, file: Path, host: str, zone: str | None, format: str | None, at: str | None, **options):
        taken_at = None
        if at is not None:
            try:
                taken_at = parse_datetime(at)
            except ValueError:  # well formed, impossible (month 13)
                taken_at = None
            if taken_at is None or taken_at.tzinfo is None:
                raise CommandError(f"--at {at!r} is not a time with a zone (2026-12-06T10:00:00+00:00).")
        if str(file) == "-":
            data = sys.stdin.buffer.read()
        elif not file.is_file():
            raise CommandError(f"{file} is not a file.")
        else:
            data = file.read_bytes()
        try:
            target = intake.find_host(host, zone)
            parsed = intake.read(data, format, taken_at=taken_at)
        except (intake.HostNotFound, ReportError) as error:
            raise CommandError(f"{file}: {error}. Nothing was imported.") from None
        imported = reports.take(target, parsed, source=ReportSource.COMMAND)
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {len(parsed.sockets)} listening socket(s) of {target.address} ({parsed.format}): "
                f"{imported.summary}."
            )
        )
