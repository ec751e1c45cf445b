"""Each person's time zone: chosen on their settings page, activated for every page they open.

Django renders every aware datetime in the *current* time zone (``|date``,
``localtime``, form fields); the middleware makes that the person's. Read
into the session at login (``on_login``, connected by accounts.apps), so a
page costs no extra query.
"""

import zoneinfo
from functools import cache

from django.conf import settings
from django.utils import timezone

from accounts.models import PersonalSettings

SESSION_KEY = "portwatch_time_zone"


@cache
def choices() -> list[tuple[str, str]]:
    names = sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})
    return [(name, name.replace("_", " ")) for name in names]


def of(user) -> str:
    """The name of ``user``'s time zone (the installation's when they chose none)."""
    chosen = PersonalSettings.objects.filter(user=user).values_list("time_zone", flat=True).first()
    return chosen or settings.TIME_ZONE


def remember(request, name: str) -> None:
    request.session[SESSION_KEY] = name


class PersonalTimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            # Put there at login (and by the settings page): a page costs no query for it.
            name = request.session.get(SESSION_KEY) or settings.TIME_ZONE
            try:
                timezone.activate(zoneinfo.ZoneInfo(name))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # removed from the system's tz database
                timezone.deactivate()
        else:
            timezone.deactivate()
        return self.get_response(request)


def on_login(sender, request, user, **kwargs):
    """user_logged_in: the person's zone into their new session (every way in: the form, LDAP, OIDC)."""
    if request is not None and hasattr(request, "session"):
        remember(request, of(user))
