"""Bad API tokens: enough from one address, and that address gets 429 with Retry-After for every token.

The counters live in the suite's real Redis (settings.CACHES), as in production.
"""

import pytest
import redis
import requests
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inventory.models import AuditEntry
from portwatch.api.throttle import TokenFailureThrottle
from portwatch.roles import Role
from tests.conftest import make_user
from tests.processes import WebProcess

pytestmark = pytest.mark.django_db

ATTACKER, COLLEAGUE = "198.18.0.66", "198.18.0.77"
LIMIT = 3


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.API_TOKEN_FAILURE_LIMIT = LIMIT
    yield
    for address in (ATTACKER, COLLEAGUE):
        TokenFailureThrottle(address).forget()


@pytest.fixture
def good_token(viewer):
    return Token.objects.create(user=viewer).key


def call(token: str, address: str, path: str | None = None, **headers):
    client = APIClient()
    return client.get(
        path or reverse("api:host-list"), HTTP_AUTHORIZATION=f"Token {token}", REMOTE_ADDR=address, headers=headers
    )


def test_with_the_cache_unreachable_nothing_is_counted_and_nobody_refused(good_token):
    """Redis restarting must not take the API (nor /health, which reports it) down with it."""
    from django.test import override_settings

    from tests.stack import free_port

    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    with override_settings(CACHES=unreachable):
        for _ in range(LIMIT + 1):
            assert call("not-a-token", ATTACKER).status_code == 401
        assert call(good_token, ATTACKER).status_code == 200


def test_the_counters_are_in_the_shared_redis_cache():
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert settings.CACHES["default"]["LOCATION"] == settings.REDIS_URL


def test_bad_tokens_from_one_address_end_in_429_with_retry_after(good_token):
    assert [call("0" * 40, ATTACKER).status_code for _ in range(LIMIT - 1)] == [401] * (LIMIT - 1)
    response = call("1" * 40, ATTACKER)
    assert response.status_code == 429
    assert 899 <= int(response["Retry-After"]) <= 900  # 900 s, less the moment between counting and answering
    assert "Too many bad API tokens" in response.json()["detail"]
    # A good token from that address is refused as well: a guesser learns nothing.
    refused = call(good_token, ATTACKER)
    assert refused.status_code == 429 and 890 <= int(refused["Retry-After"]) <= 900
    # The same token keeps working from anywhere else.
    assert call(good_token, COLLEAGUE).status_code == 200


def test_the_block_lasts_its_time_in_redis(good_token):
    for _ in range(LIMIT):
        call("0" * 40, ATTACKER)
    key = cache.make_and_validate_key(f"api-token-failures:blocked:{ATTACKER}")
    assert 890 <= redis.Redis.from_url(settings.REDIS_URL).ttl(key) <= 900
    # When it expires (here: forgotten), the address gets its answers again.
    TokenFailureThrottle(ATTACKER).forget()
    assert call(good_token, ATTACKER).status_code == 200


def test_the_block_is_audited_once(good_token):
    for _ in range(LIMIT + 3):
        call("0" * 40, ATTACKER)
    entry = AuditEntry.objects.get(action="api_token.block")
    assert entry.object_repr == ATTACKER and entry.after == {"client": ATTACKER, "failures": LIMIT, "minutes": 15}


def test_good_tokens_are_never_counted(good_token):
    assert {call(good_token, ATTACKER).status_code for _ in range(LIMIT * 2)} == {200}
    assert call("0" * 40, ATTACKER).status_code == 401


def test_malformed_headers_count_as_bad_tokens():
    client = APIClient()
    codes = [
        client.get(reverse("api:host-list"), HTTP_AUTHORIZATION=header, REMOTE_ADDR=ATTACKER).status_code
        for header in ("Token", "Bearer a b", "Token " + "0" * 40)
    ]
    assert codes == [401, 401, 429]


def test_a_browser_session_from_a_blocked_address_keeps_working(client, viewer):
    for _ in range(LIMIT):
        call("0" * 40, ATTACKER)
    client.force_login(viewer)
    assert client.get(reverse("api:host-list"), REMOTE_ADDR=ATTACKER).status_code == 200


def test_probes_share_the_count(good_token):
    """/metrics and /health authenticate with the same tokens, and are throttled the same."""
    for _ in range(LIMIT):
        call("0" * 40, ATTACKER, reverse("metrics"))
    assert call(good_token, ATTACKER, reverse("health")).status_code == 429


def test_x_forwarded_for_does_not_escape_the_count_without_the_tls_proxy():
    codes = [call("0" * 40, ATTACKER, x_forwarded_for=f"203.0.113.{n}").status_code for n in range(LIMIT)]
    assert codes == [401] * (LIMIT - 1) + [429]


def test_behind_the_tls_proxy_each_client_address_has_its_own_count(settings, good_token):
    settings.BEHIND_TLS_PROXY = True
    proxy = "127.0.0.1"
    codes = [call("0" * 40, proxy, x_forwarded_for=f"203.0.113.{n}, {ATTACKER}").status_code for n in range(LIMIT)]
    assert codes == [401] * (LIMIT - 1) + [429]
    # Everyone else comes through the same proxy, and is not blocked.
    assert call(good_token, proxy, x_forwarded_for=COLLEAGUE).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_two_web_servers_count_together(tmp_path):
    key = Token.objects.create(user=make_user("tess-token", Role.VIEWER)).key
    servers = [WebProcess(tmp_path / f"web-{n}.log", API_TOKEN_FAILURE_LIMIT=LIMIT) for n in (1, 2)]
    try:
        codes = [
            requests.get(
                f"{servers[n % 2].url}/api/hosts/", headers={"Authorization": f"Token {'0' * 40}"}, timeout=30
            ).status_code
            for n in range(LIMIT)
        ]
        assert codes == [401] * (LIMIT - 1) + [429]
        for server in servers:
            response = requests.get(f"{server.url}/api/hosts/", headers={"Authorization": f"Token {key}"}, timeout=30)
            assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    finally:
        for server in servers:
            server.stop()
        TokenFailureThrottle("127.0.0.1").forget()
