from django.apps import AppConfig


class ReachConfig(AppConfig):
    name = "reach"
    verbose_name = "Reachability"

    def ready(self):
        from reach import signals  # noqa: F401, PLC0415 - connects the zone's home vantage point
