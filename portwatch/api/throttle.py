"""Bad API tokens, counted per client address: too many, and the address is refused a while.

DRF authenticates a request before it runs its throttle classes, and a
request with a wrong token ends at authentication with a 401: a throttle
class would never see one. So the authentication class itself
(``auth.TokenOrBearerAuthentication``) asks here first and reports each
failure. ``API_TOKEN_FAILURE_LIMIT`` failures from one address, each within
``API_TOKEN_BLOCK_MINUTES`` of the one before, refuse every token from that address, good or
bad (a good one must not tell a guesser that it guessed right), for
``API_TOKEN_BLOCK_MINUTES``: 429 with ``Retry-After``. Other addresses,
and the same person's browser session, are not affected.

The counters live in the cache, which every web process shares (Redis in
production, files under var/ otherwise).
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled

from portwatch.client_address import client_address

log = logging.getLogger(__name__)
KEY_PREFIX = "api-token-failures"


class TokenFailureThrottle:
    """The bad-token count and block of one client address."""

    def __init__(self, address: str | None):
        self.address = address or "unknown"
        self._failures_key = f"{KEY_PREFIX}:count:{self.address}"
        self._blocked_key = f"{KEY_PREFIX}:blocked:{self.address}"

    @classmethod
    def for_request(cls, request) -> "TokenFailureThrottle":
        return cls(client_address(request))

    @property
    def limit(self) -> int:
        return settings.API_TOKEN_FAILURE_LIMIT

    @property
    def seconds(self) -> int:
        return settings.API_TOKEN_BLOCK_MINUTES * 60

    def check(self) -> None:
        """Raise Throttled while the address is blocked; its token is not even looked up.

        With the cache unreachable (Redis restarting) nothing is counted and
        nobody is refused: the API, /health and /metrics keep answering, and
        a token is still 160 random bits to guess.
        """
        try:
            blocked_until = cache.get(self._blocked_key)
        except Exception as error:  # redis-py's ConnectionError and kin; the backend does not wrap them
            log.warning("API token throttle skipped: the cache did not answer (%s)", error)
            return
        if blocked_until is not None:
            self._refuse(blocked_until)

    def failed(self) -> None:
        """Count one bad token; the one that reaches the limit blocks the address (and is refused itself)."""
        try:
            self._count_failure()
        except Throttled:
            raise
        except Exception as error:  # the cache did not answer: see check()
            log.warning("API token throttle skipped: the cache did not answer (%s)", error)

    def _count_failure(self) -> None:
        # add() starts a count, incr() counts atomically on Redis: two web
        # processes counting at once each get their own number. The count lasts
        # until a whole period passes without a failure.
        cache.add(self._failures_key, 0, timeout=self.seconds)
        try:
            failures = cache.incr(self._failures_key)
        except ValueError:  # the count expired between the two calls
            cache.add(self._failures_key, 1, timeout=self.seconds)
            failures = 1
        cache.touch(self._failures_key, timeout=self.seconds)
        if failures < self.limit:
            return
        blocked_until = time.time() + self.seconds
        if failures == self.limit:
            cache.set(self._blocked_key, blocked_until, timeout=self.seconds)
            cache.delete(self._failures_key)
            self._record_block()
        self._refuse(blocked_until)

    def forget(self) -> None:
        """Drop the address's count and block."""
        cache.delete_many([self._failures_key, self._blocked_key])

    def _refuse(self, blocked_until: float):
        wait = max(1, round(blocked_until - time.time()))
        raise Throttled(
            wait=wait,
            detail=f"Too many bad API tokens from your address: every token from it is refused for {wait} s.",
        )

    def _record_block(self) -> None:
        # The audit log's models load after DRF reads its settings, which import this module.
        from inventory import audit  # noqa: PLC0415 - import cycle

        minutes = settings.API_TOKEN_BLOCK_MINUTES
        log.warning("%d bad API tokens from %s: refusing its tokens for %d minutes", self.limit, self.address, minutes)
        audit.record(
            None,
            "api_token.block",
            object_type="client address",
            object_id=self.address[:64],
            object_repr=self.address,
            summary=f"{self.limit} bad API tokens from {self.address}: its tokens are refused for {minutes} minutes.",
            after={"client": self.address, "failures": self.limit, "minutes": minutes},
        )
