"""The default zone, and one group per role (see portwatch.roles)."""

from django.db import migrations

ROLE_GROUPS = ["viewer", "reviewer", "admin"]


def create(apps, schema_editor):
    Zone = apps.get_model("inventory", "Zone")
    Group = apps.get_model("auth", "Group")
    Zone.objects.get_or_create(name="default", defaults={"description": "Default zone"})
    for name in ROLE_GROUPS:
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
