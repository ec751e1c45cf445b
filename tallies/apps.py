from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TalliesConfig(AppConfig):
    name = "tallies"
    verbose_name = "Kept counts"

    def ready(self):
        from tallies import maintenance  # noqa: PLC0415 - models are loaded by now

        post_migrate.connect(maintenance.ensure_triggers, sender=self)
