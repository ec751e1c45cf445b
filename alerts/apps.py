from django.apps import AppConfig


class AlertsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self):
        # The outbox listens to the scan engine's output (one-way: scans never import alerts).
        from alerts import outbox  # noqa: F401, PLC0415 - connects the receiver
