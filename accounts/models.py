"""What each person sets for themselves (their time zone). Roles stay in Django's groups."""

from django.conf import settings
from django.db import models


class PersonalSettings(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personal_settings")
    # An IANA name (Europe/Paris); empty: the installation's TIME_ZONE.
    time_zone = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name_plural = "personal settings"

    def __str__(self):
        return f"{self.user}: {self.time_zone or 'the installation time zone'}"
