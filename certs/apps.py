from django.apps import AppConfig


class CertsConfig(AppConfig):
    name = "certs"
    verbose_name = "Certificates"

    def ready(self):
        from certs import signals  # noqa: F401, PLC0415 - records what a scan's ssl-cert saw
