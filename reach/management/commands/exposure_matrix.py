"""Print the exposure matrix: zones (or tags) by vantage point, as the Exposure page shows it."""

import csv
import json

from django.core.management.base import BaseCommand, CommandError

from reach.forms import MatrixFilterForm
from reach.matrix import read_matrix

FORMATS = ("text", "csv", "json")


class Command(BaseCommand):
    help = (
        "Print the exposure matrix: for each zone (or tag) and vantage point, the open ports reached from there "
        "and the segmentation violations among them. The Exposure page's filters as options."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", default="zone", help="zone (default) or tag.")
        parser.add_argument("--port", default="", help="Ports, e.g. 22,5432 or 8000-8100.")
        parser.add_argument("--protocol", default="", help="tcp or udp.")
        parser.add_argument("--risk", default="", help="At least this severity: 1 low, 2 medium, 3 high, 4 critical.")
        parser.add_argument("--rule", default="", help="A segmentation rule's id.")
        parser.add_argument("--format", default="text", choices=FORMATS)

    def handle(self, *args, **options):
        keys = ("rows", "port", "protocol", "risk", "rule")
        form = MatrixFilterForm({key: options[key] for key in keys})
        if not form.is_valid():
            problems = "; ".join(f"--{field}: {' '.join(errors)}" for field, errors in form.errors.items())
            raise CommandError(f"Nothing counted. {problems}")
        matrix = read_matrix(form.query())
        names = [vantage.name for vantage in matrix.vantages]
        rows = [(row.item.name, [(cell.exposed, cell.violated) for cell in row.cells]) for row in matrix.rows]
        if options["format"] == "json":
            cells = [
                {matrix.query.rows: name, "vantage": vantage, "exposed": exposed, "violated": violated}
                for name, counts in rows
                for vantage, (exposed, violated) in zip(names, counts, strict=True)
            ]
            self.stdout.write(json.dumps({"rows": matrix.query.rows, "cells": cells}, indent=2))
        elif options["format"] == "csv":
            writer = csv.writer(self.stdout)
            writer.writerow([matrix.query.rows, "vantage", "exposed", "violated"])
            for name, counts in rows:
                for vantage, (exposed, violated) in zip(names, counts, strict=True):
                    writer.writerow([name, vantage, exposed, violated])
        else:
            self._table(matrix.query.rows, names, rows)

    def _table(self, kind: str, names: list[str], rows: list) -> None:
        """Open ports reached / violations, one column per vantage point ("-": nothing)."""
        header = [kind, *names]
        body = [[name, *(f"{e}/{v}" if e or v else "-" for e, v in counts)] for name, counts in rows]
        widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
        for line in [header, *body]:
            self.stdout.write("  ".join(str(value).ljust(width) for value, width in zip(line, widths, strict=True)))
        self.stdout.write("(open ports reached / segmentation violations among them)")
