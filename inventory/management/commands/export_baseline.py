from django.core.management.base import BaseCommand

from inventory.baseline import export_text


class Command(BaseCommand):
    help = "Write the port rules and the segmentation rules as YAML (to a file, or to standard output)."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="Where to write; standard output when omitted.")

    def handle(self, *args, file=None, **options):
        text = export_text()
        if file:
            with open(file, "w", encoding="utf-8") as out:
                out.write(text)
            self.stderr.write(f"Wrote {text.count(chr(10) + '- id:')} rule(s), port and segmentation, to {file}.")
        else:
            self.stdout.write(text, ending="")
