"""Logging in through OpenID Connect, in a real browser, against a real provider.

The provider is a separate Django project (tests/oidc_idp, django-oidc-provider)
under gunicorn on loopback (tests/oidc_server.py); PortWatch is the test's live
server with the settings the README's variables give. The whole code flow runs:
PortWatch's login page, the provider's login page, the callback, the token and
userinfo requests, the ID token's signature checked against the provider's keys.
"""

import shutil

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from accounts import oidc_settings
from inventory.models import AuditEntry
from portwatch.roles import Role, role_of
from tests.conftest import PASSWORD, make_user
from tests.oidc_server import CLIENT_ID, CLIENT_SECRET, Provider
from tests.test_browser import CHROMIUM

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORDS = {"olga": "olga-pass-1", "otto": "otto-pass-2", "oscar": "oscar-pass-3"}


@pytest.fixture
def provider(live_server, tmp_path, settings, monkeypatch):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium")
    server = Provider(tmp_path / "idp", f"{live_server.url}{reverse('oidc_authentication_callback')}")
    environment = {
        "OIDC_RP_CLIENT_ID": CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_OP_AUTHORIZATION_ENDPOINT": server.endpoint("/authorize"),
        "OIDC_OP_TOKEN_ENDPOINT": server.endpoint("/token"),
        "OIDC_OP_USER_ENDPOINT": server.endpoint("/userinfo"),
        "OIDC_OP_JWKS_ENDPOINT": server.endpoint("/jwks"),
        "OIDC_PROVIDER_NAME": "Test IdP",
        "OIDC_REVIEWER_VALUES": "secops",
        "OIDC_ADMIN_VALUES": "secops-leads",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name, value in oidc_settings.settings_from_environment().items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "accounts.oidc.ProviderBackend"]
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    yield server
    server.stop()


def sign_in(live_server, username: str, password: str, *, start: str = "/hosts/") -> tuple[str, str]:
    """A person opens PortWatch, chooses the provider, signs in there; returns (where they land, the page's text)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(f"{live_server.url}{start}")
        assert "/login/" in page.url
        page.get_by_role("link", name="Log in with Test IdP").click()
        page.wait_for_url("**/accounts/login/**")  # the provider's own login page
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.get_by_role("button", name="Sign in at the provider").click()
        page.wait_for_url(f"{live_server.url}/**")
        page.wait_for_load_state()
        landed, text = page.url, page.inner_text("body")
        browser.close()
    return landed, text


@pytest.mark.parametrize(("username", "role"), [("olga", Role.REVIEWER), ("otto", Role.ADMIN)])
def test_a_person_logs_in_through_the_provider_with_the_role_its_groups_give(provider, live_server, username, role):
    landed, text = sign_in(live_server, username, PASSWORDS[username])
    assert landed == f"{live_server.url}/hosts/", text[:500]  # where they were going
    assert f"{role.label} role" in text
    user = User.objects.get(username=username)
    assert role_of(user) == role and not user.has_usable_password() and user.email == f"{username}@idp.test"
    (change,) = AuditEntry.objects.filter(action="user.role_from_directory", object_repr=username)
    assert change.after == {"role": role.label} and "OpenID Connect" in change.summary
    (login,) = AuditEntry.objects.filter(action="login.success", object_id=username)
    assert "through OpenID Connect" in login.summary


def test_someone_whose_claims_give_no_role_is_sent_back_and_told_why(provider, live_server):
    landed, text = sign_in(live_server, "oscar", PASSWORDS["oscar"])
    assert "/login/?sso=failed" in landed
    assert "Single sign-on did not log you in" in text
    assert not User.objects.filter(username="oscar").exists()


def test_the_provider_never_logs_in_to_a_local_account_of_the_same_name(provider, live_server):
    local = make_user("olga", Role.VIEWER)
    landed, _ = sign_in(live_server, "olga", PASSWORDS["olga"])
    assert "/login/?sso=failed" in landed
    local.refresh_from_db()
    assert local.check_password(PASSWORD) and role_of(local) == Role.VIEWER


def test_the_single_sign_on_pages_are_not_there_when_it_is_not_configured(client, settings):
    settings.OIDC_ENABLED = False
    assert client.get(reverse("oidc-start")).status_code == 404
    assert client.get(reverse("oidc_authentication_callback")).status_code == 404
    assert "Log in with" not in client.get(reverse("login")).content.decode()
