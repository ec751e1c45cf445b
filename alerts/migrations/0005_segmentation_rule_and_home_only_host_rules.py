"""Built-in alert rules for vantage points: a new segmentation violation alerts, and the
built-in host rules hold to the zone's home vantage point.

A host that stops answering office-lan is usually good news (a firewall
closed), and one first seen from elsewhere is an exposure question (the
segmentation rules and ``exposure_opened`` say it): "Host unreachable" and
"Host discovered" keep meaning what the zone's own scanners see, as before
vantage points existed. An admin can widen them on the alert rules page.
"""

from django.db import migrations

HOME_ONLY_RULES = ["Host discovered", "Host unreachable"]
SEGMENTATION_RULE = ("Segmentation violated", ["segmentation_violated"])


def create(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    AlertRule.objects.filter(name__in=HOME_ONLY_RULES, built_in=True).update(home_only=True)
    name, kinds = SEGMENTATION_RULE
    AlertRule.objects.get_or_create(name=name, defaults={"kinds": kinds, "policy_statuses": [], "built_in": True})


def remove(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    AlertRule.objects.filter(name__in=HOME_ONLY_RULES, built_in=True).update(home_only=False)
    AlertRule.objects.filter(name=SEGMENTATION_RULE[0], built_in=True).delete()


class Migration(migrations.Migration):
    dependencies = [("alerts", "0004_alert_rule_vantage")]

    operations = [migrations.RunPython(create, remove)]
