"""The notifications page and API, newest first and paged by keyset
(``inventory.paging``): read from an index instead of sorting the outbox."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0002_default_rules"),
        ("scans", "0012_overview_metrics_indexes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(fields=["-created_at", "-id"], name="notification_created_idx"),
        ),
    ]
