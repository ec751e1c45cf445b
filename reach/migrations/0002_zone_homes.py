"""Every existing zone gets its home vantage point: its workers and its queue, as before."""

from django.db import migrations


def homes(apps, schema_editor):
    Zone = apps.get_model("inventory", "Zone")
    VantagePoint = apps.get_model("reach", "VantagePoint")
    for zone in Zone.objects.all():
        if not VantagePoint.objects.filter(home_of=zone).exists():
            name = zone.name if not VantagePoint.objects.filter(name=zone.name).exists() else f"{zone.name}-home"
            VantagePoint.objects.create(name=name, home_of=zone, description=f"Home of zone {zone.name}")


class Migration(migrations.Migration):
    dependencies = [("reach", "0001_initial"), ("inventory", "0016_queue_and_risk_indexes_with_id")]

    operations = [migrations.RunPython(homes, migrations.RunPython.noop)]
