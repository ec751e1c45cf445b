"""Logging in through LDAP, against a real OpenLDAP server (Debian's slapd, tests/ldap_server.py).

The directory's groups give the roles, at every login; a person in no such
group cannot log in; a directory login never takes over a local account;
logins and role changes from the directory are audited; API tokens work for
directory users; local accounts can be switched off. The last test logs in
through the login page in a real browser.
"""

import shutil

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import directory
from inventory.models import AuditEntry
from portwatch.roles import Role, role_of
from tests import ldap_server
from tests.conftest import PASSWORD, make_user
from tests.ldap_server import GROUP_DNS, GROUPS, PASSWORDS, PEOPLE, Slapd
from tests.test_browser import CHROMIUM

pytestmark = pytest.mark.django_db(transaction=True)

LOCAL = "django.contrib.auth.backends.ModelBackend"
DIRECTORY = "accounts.directory.DirectoryBackend"


@pytest.fixture
def slapd(tmp_path):
    if not ldap_server.available():
        pytest.fail("slapd is not installed: apt-get install slapd ldap-utils (make test does this as root)")
    server = Slapd(tmp_path / "ldap")
    yield server
    server.stop()


@pytest.fixture
def sso(slapd, settings, monkeypatch):
    """PortWatch configured as the README says, from the environment, for this directory."""
    environment = {
        "LDAP_SERVER_URI": slapd.uri,
        "LDAP_BIND_DN": ldap_server.ADMIN_DN,
        "LDAP_BIND_PASSWORD": ldap_server.ADMIN_PASSWORD,
        "LDAP_USER_SEARCH_BASE": PEOPLE,
        "LDAP_GROUP_SEARCH_BASE": GROUPS,
        "LDAP_VIEWER_GROUPS": GROUP_DNS["viewer"],
        "LDAP_REVIEWER_GROUPS": GROUP_DNS["reviewer"],
        "LDAP_ADMIN_GROUPS": GROUP_DNS["admin"],
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name, value in directory.settings_from_environment().items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", LOCAL, DIRECTORY]
    return slapd


def log_in(client, username: str, password: str) -> bool:
    response = client.post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302 and response.url == reverse("overview")


def audited(action: str, username: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action, object_repr=username).order_by("seq"))


@pytest.mark.parametrize(("uid", "role"), [("vera", Role.VIEWER), ("rex", Role.REVIEWER), ("ada", Role.ADMIN)])
def test_the_directorys_groups_give_the_role_and_the_login_is_audited(sso, client, uid, role):
    assert log_in(client, uid, PASSWORDS[uid])
    user = User.objects.get(username=uid)
    assert role_of(user) == role and not user.has_usable_password()
    assert user.email == f"{uid}@portwatch.test"  # the directory's attributes, mapped
    (change,) = audited("user.role_from_directory", uid)
    assert (change.before, change.after) == ({"role": "none"}, {"role": role.label})
    (login,) = AuditEntry.objects.filter(action="login.success", object_id=uid)
    assert "through the directory (LDAP)" in login.summary
    page = client.get(reverse("overview")).content.decode()
    assert f"{role.label} role" in page


def test_a_role_changed_in_the_directory_follows_at_the_next_login(sso, client):
    assert log_in(client, "rex", PASSWORDS["rex"])
    sso.move("rex", leave="reviewer", join="admin")
    client.logout()
    assert log_in(client, "rex", PASSWORDS["rex"])
    assert role_of(User.objects.get(username="rex")) == Role.ADMIN
    changes = audited("user.role_from_directory", "rex")
    assert [entry.after["role"] for entry in changes] == ["reviewer", "admin"]
    assert changes[-1].before == {"role": "reviewer"}

    # Out of every PortWatch group: no login at all any more.
    sso.move("rex", leave="admin")
    client.logout()
    assert not log_in(client, "rex", PASSWORDS["rex"])


def test_no_login_without_a_role_group_nor_with_a_wrong_password(sso, client):
    assert not log_in(client, "nobody", PASSWORDS["nobody"])
    assert not User.objects.filter(username="nobody").exists()
    assert not log_in(client, "vera", "not-her-password")
    assert not User.objects.filter(username="vera").exists()
    page = client.post(reverse("login"), {"username": "vera", "password": "wrong"}).content.decode()
    assert "correct username and password" in page


def test_a_directory_login_never_takes_over_a_local_account(sso, client, settings):
    # The directory has a uid "admin" too (in no group here: give it one so only the collision refuses it).
    sso.move("admin", join="admin")
    local = make_user("admin", Role.VIEWER)
    assert not log_in(client, "admin", PASSWORDS["admin"])  # the directory's password: refused
    assert role_of(User.objects.get(pk=local.pk)) == Role.VIEWER and not audited("user.role_from_directory", "admin")
    assert log_in(client, "admin", PASSWORD)  # the local password still works


def test_a_directory_user_gets_an_api_token_that_works(sso, client):
    assert log_in(client, "rex", PASSWORDS["rex"])
    response = client.post(reverse("api-token"), {"action": "create"})
    assert response.status_code == 200
    token = Token.objects.get(user__username="rex")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api.get("/api/hosts/").status_code == 200


def test_local_accounts_can_be_switched_off(sso, client, settings):
    make_user("local-lou", Role.ADMIN)
    settings.AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", DIRECTORY]
    assert not log_in(client, "local-lou", PASSWORD)
    assert log_in(client, "vera", PASSWORDS["vera"])


def test_the_directory_down_refuses_its_logins_and_local_ones_still_work(sso, client):
    make_user("local-lou", Role.VIEWER)
    sso.stop()
    assert not log_in(client, "vera", PASSWORDS["vera"])
    assert log_in(client, "local-lou", PASSWORD)


def test_a_directory_user_logs_in_through_the_login_page_in_a_browser(sso, live_server, monkeypatch):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(base_url=live_server.url)
        page.goto("/hosts/")  # sent to the login page first
        assert "/login/" in page.url
        page.fill("input[name=username]", "rex")
        page.fill("input[name=password]", PASSWORDS["rex"])
        page.click("form button[type=submit]")
        page.wait_for_url("**/hosts/")
        assert "reviewer role" in page.inner_text("header")
        browser.close()
