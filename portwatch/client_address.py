"""Where a request comes from: the one answer that login lockouts and the API's throttle both use.

Without a proxy that is the socket's peer, ``REMOTE_ADDR``, and nothing the
client sends changes it. Behind the TLS proxy (``BEHIND_TLS_PROXY=1``, one
proxy) every request's peer is the proxy, which appends the address it saw to
``X-Forwarded-For``: the right-most entry is the proxy's word, and everything
left of it is whatever the client chose to send. Trusting the left-most entry,
as many examples do, would let anyone pick the address they are counted
under, and so walk around every lockout.
"""

import ipaddress

from django.conf import settings


def client_address(request) -> str | None:
    """The client's address as text, or None when the server knows none (a Unix socket)."""
    if settings.BEHIND_TLS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        proxy_saw = forwarded.rpartition(",")[2].strip()
        if proxy_saw:
            try:
                return str(ipaddress.ip_address(proxy_saw))
            except ValueError:
                # Not what our proxy writes: the request did not come through it.
                pass
    return request.META.get("REMOTE_ADDR") or None
