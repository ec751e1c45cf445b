"""The alert rules a new installation starts with; they alert once a channel is attached."""

from django.db import migrations

DEFAULT_RULES = [
    ("Unreviewed port opened", ["port_opened"], ["unreviewed"]),
    ("Rejected port seen open", ["port_opened"], ["rejected"]),
    ("Approved port closed", ["port_closed"], ["approved"]),
    ("Host discovered", ["host_discovered"], []),
    ("Host unreachable", ["host_unreachable"], []),
]


def create(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    for name, kinds, statuses in DEFAULT_RULES:
        AlertRule.objects.get_or_create(
            name=name, defaults={"kinds": kinds, "policy_statuses": statuses, "built_in": True}
        )


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_outbox")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
