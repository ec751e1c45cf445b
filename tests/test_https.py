"""Behind the TLS proxy: HTTPS only (redirect and HSTS), except for the probes that reach gunicorn inside.

Against the real web server (gunicorn, as `make run` and compose start it), with the
headers a TLS-terminating proxy adds.
"""

import subprocess
import sys

import pytest
import requests
import yaml

from tests.processes import ROOT, WebProcess

pytestmark = pytest.mark.django_db(transaction=True)

FROM_PROXY_OVER_HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.18.0.10"}


@pytest.fixture
def web(tmp_path):
    server = WebProcess(tmp_path / "web.log", BEHIND_TLS_PROXY=1)
    yield server
    server.stop()


def get(web, path, **headers):
    return requests.get(f"{web.url}{path}", headers=headers, allow_redirects=False, timeout=30)


def test_plain_http_is_sent_to_https(web):
    response = get(web, "/login/")
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{web.port}/login/"


def test_https_through_the_proxy_gets_the_page_and_hsts(web):
    response = get(web, "/login/", **FROM_PROXY_OVER_HTTPS)
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.parametrize("path", ["/health", "/metrics"])
def test_probes_inside_the_network_are_not_redirected(web, path):
    # They still need a token: 401, not a redirect to a TLS port gunicorn does not have.
    response = get(web, path)
    assert response.status_code == 401
    assert "Strict-Transport-Security" not in response.headers


def test_without_the_tls_proxy_nothing_is_redirected(tmp_path):
    server = WebProcess(tmp_path / "web.log")
    try:
        response = get(server, "/login/", **{"X-Forwarded-Proto": "https"})
        assert response.status_code == 200
        assert "Strict-Transport-Security" not in response.headers
    finally:
        server.stop()


def test_the_compose_health_check_passes_behind_the_proxy(web):
    """docker-compose.yml's web health check, pointed at this server: a redirect to https:// would fail it."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    check = compose["services"]["web"]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "python"]
    command = [sys.executable, *(part.replace("127.0.0.1:8000", f"127.0.0.1:{web.port}") for part in check[2:])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
