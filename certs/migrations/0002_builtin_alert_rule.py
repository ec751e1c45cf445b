"""A built-in alert rule for certificates, as for listeners and segmentation:
a port's certificate changed, expiring within CERT_EXPIRY_WARN_DAYS, or
expired (the expiry ones repeat every CERT_EXPIRY_REPEAT_DAYS, certs.expiry).
It sends nothing until a channel uses it."""

from django.db import migrations

NAME = "Certificate changed, expiring or expired"
KINDS = ["certificate_changed", "certificate_expiring", "certificate_expired"]


def create(apps, schema_editor):
    apps.get_model("alerts", "AlertRule").objects.get_or_create(
        name=NAME, defaults={"kinds": KINDS, "policy_statuses": [], "built_in": True}
    )


def remove(apps, schema_editor):
    apps.get_model("alerts", "AlertRule").objects.filter(name=NAME, built_in=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("certs", "0001_initial"),
        ("alerts", "0007_workers_watch"),
        ("scans", "0017_certificate_changes_and_tls_profile"),
    ]

    operations = [migrations.RunPython(create, remove)]
