"""Leave room in host and service pages for HOT updates (PostgreSQL only).

Every scan rewrites last_seen/last_scanned of each host it covered; with room
for a new version of every row on its page, PostgreSQL updates them in place
without touching the indexes (heap-only tuples). Services are rewritten only
when they change, so they need less room.
"""

from django.db import migrations


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE inventory_service SET (fillfactor = 80)")
    schema_editor.execute("ALTER TABLE inventory_host SET (fillfactor = 45)")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE inventory_service RESET (fillfactor)")
    schema_editor.execute("ALTER TABLE inventory_host RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_flapping")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
