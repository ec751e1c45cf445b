"""The built-in scan profiles: vetted option sets users choose from."""

from django.db import migrations

BUILTIN_PROFILES = [
    {
        "slug": "quick",
        "name": "Quick",
        "description": "The 100 most common TCP ports.",
        "scan_type": "tcp",
        "port_scope": "top",
        "top_ports": 100,
    },
    {
        "slug": "standard",
        "name": "Standard",
        "description": "The 1,000 most common TCP ports.",
        "scan_type": "tcp",
        "port_scope": "top",
        "top_ports": 1000,
    },
    {
        "slug": "full",
        "name": "Full",
        "description": "All 65,535 TCP ports.",
        "scan_type": "tcp",
        "port_scope": "all",
    },
    {
        "slug": "services",
        "name": "Services",
        "description": "The 1,000 most common TCP ports, with service and version detection.",
        "scan_type": "tcp",
        "port_scope": "top",
        "top_ports": 1000,
        "version_detection": True,
    },
    {
        "slug": "udp",
        "name": "UDP",
        "description": "The 100 most common UDP ports (needs a privileged worker).",
        "scan_type": "udp",
        "port_scope": "top",
        "top_ports": 100,
    },
]


def create(apps, schema_editor):
    ScanProfile = apps.get_model("scans", "ScanProfile")
    for profile in BUILTIN_PROFILES:
        fields = dict(profile)
        slug = fields.pop("slug")
        ScanProfile.objects.update_or_create(slug=slug, defaults={**fields, "builtin": True})


class Migration(migrations.Migration):
    dependencies = [("scans", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
