"""Trigram and expression indexes for the search box, on PostgreSQL only.

``product__icontains`` and ``hostnames__icontains`` compile to
``UPPER(col::text) LIKE UPPER('%text%')``; a GIN trigram index on that very
expression answers them without reading a million rows. ``name__iexact``
compiles to ``UPPER(name::text) = UPPER(...)``. pg_trgm is a trusted
extension (PostgreSQL 13+): the database owner may create it. Where it cannot
be created the search still works, only slower, so the migration goes on.
SQLite has neither, and needs neither at its scale.
"""

from django.db import migrations, transaction

INDEXES = [
    "CREATE INDEX IF NOT EXISTS service_name_upper_idx ON inventory_service (UPPER(name::text))",
    "CREATE INDEX IF NOT EXISTS service_product_trgm_idx ON inventory_service "
    "USING gin (UPPER(product::text) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS host_hostnames_trgm_idx ON inventory_host USING gin (UPPER(hostnames::text) gin_trgm_ops)",
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(INDEXES[0])
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception as error:  # noqa: BLE001 (any refusal: go on without trigram indexes)
        print(f"\n  pg_trgm is not available ({error}); text search will not use an index.")
        return
    for statement in INDEXES[1:]:
        schema_editor.execute(statement)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in ("service_name_upper_idx", "service_product_trgm_idx", "host_hostnames_trgm_idx"):
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("inventory", "0012_policy_tags_assignment")]

    operations = [migrations.RunPython(forwards, backwards)]
