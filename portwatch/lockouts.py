"""Login attempts: what the audit log keeps of them, the lockout page, and unlocking.

django-axes counts failed logins per (username, client address) pair in its
``AccessAttempt`` table (settings: ``AXES_*``, from ``LOGIN_FAILURE_LIMIT``
and ``LOGIN_LOCKOUT_MINUTES``) and refuses a pair that reached the limit
before any password is checked. This module adds what PortWatch needs around
it: every attempt in the hash-chained audit log (never the password), the
page a locked-out person sees, and the list and unlock that admins use.

The table lives in the database, so every web process sees the same counts.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Sum
from django.shortcuts import render
from django.utils import timezone

from inventory import audit
from portwatch.client_address import client_address

# Audit actions, one per outcome of a login attempt, and an admin's unlock.
LOGIN_SUCCEEDED = "login.success"
LOGIN_FAILED = "login.failure"
LOGIN_LOCKED_OUT = "login.lockout"
# An attempt while locked out: refused without looking at the password.
LOGIN_REFUSED = "login.refused"
LOGIN_UNLOCKED = "login.unlock"
AUDIT_OBJECT_TYPE = "login"


def lockout_duration() -> timedelta | None:
    """How long a lockout lasts after the latest attempt; None: until an admin unlocks it."""
    return settings.AXES_COOLOFF_TIME


def _pair(username: str, address: str | None) -> str:
    return f"{username} from {address or 'an unknown address'}"


def _record(actor, action: str, username: str, address: str | None, summary: str, **after) -> None:
    audit.record(
        actor,
        action,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=username[:64],
        object_repr=_pair(username, address)[:255],
        summary=summary,
        after={"username": username, "client": address, **after},
    )


# --- the audit trail of the login form ------------------------------------------


# How a login was checked, by the backend that let the person in (Django sets user.backend).
VIA = {
    "accounts.directory.DirectoryBackend": "the directory (LDAP)",
    "accounts.oidc.ProviderBackend": "OpenID Connect",
}


def record_success(request, user) -> None:
    address = client_address(request)
    via = VIA.get(getattr(user, "backend", ""), "")
    summary = f"Logged in from {address}" + (f" through {via}." if via else ".")
    _record(user, LOGIN_SUCCEEDED, user.get_username(), address, summary)


def record_failure(request, username: str) -> None:
    """One failed attempt, after axes counted it (``request.axes_failures_since_start``).

    The typed username is kept (an admin unlocks by it), the password never is.
    Each call appends to the chain under its own lock, so concurrent failures
    from several web processes queue there and the chain stays whole.
    """
    address = client_address(request)
    failures = getattr(request, "axes_failures_since_start", None)
    limit = settings.AXES_FAILURE_LIMIT
    counts = {"failures": failures, "limit": limit}
    duration = lockout_duration()
    how_long = f"for {minutes_text(duration)}" if duration else "until an admin unlocks it"
    if failures is not None and failures > limit:
        action = LOGIN_REFUSED
        summary = f"Refused a login as {username} from {address}: locked out, the lockout restarts {how_long}."
    elif failures is not None and failures == limit:
        action = LOGIN_LOCKED_OUT
        summary = f"Locked out {username} from {address} {how_long} after {failures} failed logins."
    else:
        action = LOGIN_FAILED
        count = f" ({failures} of {limit})" if failures is not None else ""
        summary = f"Failed login as {username} from {address}{count}."
    _record(None, action, username, address, summary, **counts)


def minutes_text(duration: timedelta) -> str:
    """The duration in words, e.g. "15 minutes"."""
    minutes = round(duration.total_seconds() / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


# --- the locked-out person's page --------------------------------------------------


def lockout_response(request, original_response=None, credentials=None):
    """The page for an attempt axes refused (``AXES_LOCKOUT_CALLABLE``): 429, how long, whom to ask."""
    duration = lockout_duration()
    attempt_time = getattr(request, "axes_attempt_time", None) or timezone.now()
    context = {
        "username": (credentials or {}).get("username") or request.POST.get("username", ""),
        "address": client_address(request),
        "limit": settings.AXES_FAILURE_LIMIT,
        "minutes": minutes_text(duration) if duration else None,
        "until": attempt_time + duration if duration else None,
        "contact": settings.ADMIN_CONTACT,
    }
    response = render(request, "registration/locked_out.html", context, status=429)
    if duration:
        response["Retry-After"] = str(int(duration.total_seconds()))
    return response


# --- admins: who is locked out, and unlocking --------------------------------------


@dataclass(frozen=True)
class Lockout:
    username: str
    address: str | None
    failures: int
    last_failure: datetime
    # None: until an admin unlocks it.
    until: datetime | None


def current_lockouts(now: datetime | None = None):
    """Pairs locked out now, latest first: a queryset of dicts (``as_lockout`` reads one)."""
    attempts = AccessAttempt.objects.all()
    duration = lockout_duration()
    if duration is not None:
        # axes counts only the attempts within the lockout's length of now.
        attempts = attempts.filter(attempt_time__gte=(now or timezone.now()) - duration)
    return (
        attempts.values("username", "ip_address")
        .annotate(failures=Sum("failures_since_start"), last_failure=Max("attempt_time"))
        .filter(failures__gte=settings.AXES_FAILURE_LIMIT)
        .order_by("-last_failure", "username", "ip_address")
    )


def as_lockout(row: dict) -> Lockout:
    duration = lockout_duration()
    return Lockout(
        username=row["username"] or "",
        address=row["ip_address"],
        failures=row["failures"],
        last_failure=row["last_failure"],
        until=row["last_failure"] + duration if duration else None,
    )


def unlock(actor, username: str, address: str | None) -> int:
    """Forget the pair's failed attempts, so it may log in again at once; returns how many rows went."""
    with transaction.atomic():
        # The attempts' rows, then the audit chain's head: nobody takes them the other way
        # round (the login form appends to the chain after axes committed its count).
        _, removed = AccessAttempt.objects.filter(username=username, ip_address=address).delete()
        count = removed.get(AccessAttempt._meta.label, 0)
        if count:
            where = "from the command line" if actor is None else "by an admin"
            _record(actor, LOGIN_UNLOCKED, username, address, f"Unlocked {_pair(username, address)} {where}.")
    return count
