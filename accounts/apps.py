from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = "People's own settings"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in  # noqa: PLC0415

        from accounts import time_zones  # noqa: PLC0415

        user_logged_in.connect(time_zones.on_login, dispatch_uid="accounts.time_zones.on_login")
