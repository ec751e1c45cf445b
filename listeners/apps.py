from django.apps import AppConfig


class ListenersConfig(AppConfig):
    name = "listeners"
    verbose_name = "The host's own view"

    def ready(self):
        from listeners import signals  # noqa: F401, PLC0415 - judges the ports a scan's changes touch
