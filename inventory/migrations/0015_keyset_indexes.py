"""The host list sorted by last change, paged by keyset: the id joins the index
(the tiebreaker of ``inventory.paging``), so the hosts that never changed
(NULL) are read in id order from it instead of sorted."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0014_snapshots"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="host",
            name="host_last_change_idx",
        ),
        migrations.AddIndex(
            model_name="host",
            index=models.Index(fields=["-last_change_at", "-id"], name="host_last_change_id_idx"),
        ),
    ]
