"""A value made once per window and shared through the cache by everyone who asks within it.

The overview's figures (``portwatch.dashboard``) and their rendering
(``portwatch.overview_fragments``) are the same for many viewers for a few
seconds: whoever asks first makes them, the others read them. The cache is
a speed-up only: when it is down, each caller makes its own, and says so in
the log.
"""

import logging
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

logger = logging.getLogger(__name__)

T = TypeVar("T")


def shared(key: str, seconds: int, make: Callable[[], T], *, what: str) -> T:
    """``make()``, kept under ``key`` for ``seconds`` (0: made for this caller only)."""
    if seconds:
        try:
            kept = cache.get(key)
        except Exception:  # Redis down must not take the page with it
            logger.warning("%s: cache unavailable, made for this request", what, exc_info=True)
            return make()
        if kept is not None:
            return kept
    made = make()
    if seconds:
        try:
            cache.set(key, made, seconds)
        except Exception:
            logger.warning("%s: could not keep it in the cache", what, exc_info=True)
    return made
