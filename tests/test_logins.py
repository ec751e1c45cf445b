"""Logging in: wrong passwords lock a (username, address) pair out, admins unlock it, the audit log keeps every attempt.

Everything here goes through the real login form (Django's test client and,
at the end, gunicorn), with django-axes counting as in production.
"""

import re
import threading

import pytest
import requests
from axes.models import AccessAttempt
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse
from django.utils import timezone

from inventory import audit
from inventory.models import AuditEntry
from portwatch import lockouts
from portwatch.client_address import client_address
from portwatch.roles import GROUP_NAMES, Role
from tests.conftest import PASSWORD, make_user
from tests.processes import WebProcess

pytestmark = pytest.mark.django_db

WRONG = "not the password"
HOME, ELSEWHERE = "198.18.0.10", "198.18.0.20"


@pytest.fixture
def limit(settings):
    settings.AXES_FAILURE_LIMIT = 3
    return 3


def log_in(client, username, password, address=HOME, **headers):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address, headers=headers
    )


def logged_in(client) -> bool:
    return client.get(reverse("overview")).status_code == 200


def fail(client, username, times, address=HOME, **headers):
    return [log_in(client, username, WRONG, address, **headers).status_code for _ in range(times)]


def actions() -> list[str]:
    return list(AuditEntry.objects.filter(object_type="login").order_by("seq").values_list("action", flat=True))


# --- the lockout ------------------------------------------------------------------------


def test_wrong_passwords_lock_the_name_out_from_that_address_with_a_page_that_says_how_long(client, admin, limit):
    assert fail(client, admin.username, limit - 1) == [200] * (limit - 1)
    response = log_in(client, admin.username, WRONG)
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    text = response.content.decode()
    assert "Too many failed logins" in text and "Try again in 15 minutes" in text
    assert "ask a PortWatch admin to unlock alice-admin from 198.18.0.10" in text
    # The right password right after is refused too, and nobody is logged in.
    response = log_in(client, admin.username, PASSWORD)
    assert response.status_code == 429
    assert not logged_in(client)


@override_settings(ADMIN_CONTACT="the security team (#sec-ops)")
def test_the_lockout_page_names_whom_to_ask(client, admin, limit):
    fail(client, admin.username, limit)
    assert "ask the security team (#sec-ops) to unlock" in log_in(client, admin.username, PASSWORD).content.decode()


def test_a_lockout_reaches_neither_other_addresses_nor_other_names(client, admin, viewer, limit):
    fail(client, admin.username, limit)
    # An attacker at HOME cannot lock the real admin out from ELSEWHERE.
    assert log_in(client, admin.username, PASSWORD, ELSEWHERE).status_code == 302
    assert logged_in(client)
    other = Client()
    assert log_in(other, viewer.username, PASSWORD).status_code == 302


def test_the_login_page_itself_still_opens_during_a_lockout(client, admin, limit):
    fail(client, admin.username, limit)
    assert client.get(reverse("login"), REMOTE_ADDR=HOME).status_code == 200


def test_a_successful_login_forgets_the_failures_before_it(client, admin, limit):
    fail(client, admin.username, limit - 1)
    assert log_in(client, admin.username, PASSWORD).status_code == 302
    client.post(reverse("logout"))
    assert fail(client, admin.username, limit - 1) == [200] * (limit - 1)


def test_the_lockout_ends_when_its_time_is_over(client, admin, limit, settings):
    fail(client, admin.username, limit)
    assert log_in(client, admin.username, PASSWORD).status_code == 429
    # The latest attempt was 15 minutes and a second ago.
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timezone.timedelta(seconds=1)
    )
    assert log_in(client, admin.username, PASSWORD).status_code == 302


def test_each_attempt_during_a_lockout_starts_the_wait_again(client, admin, limit, settings):
    fail(client, admin.username, limit)
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME / 2)
    assert log_in(client, admin.username, WRONG).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME / 2)
    # Half a lockout after the latest attempt it still holds.
    assert log_in(client, admin.username, PASSWORD).status_code == 429


@override_settings(AXES_COOLOFF_TIME=None)
def test_with_no_lockout_time_only_an_admin_lifts_it(client, admin, limit):
    fail(client, admin.username, limit)
    response = log_in(client, admin.username, PASSWORD)
    assert response.status_code == 429 and "Retry-After" not in response
    assert "The lock stays until an admin lifts it" in response.content.decode()
    AccessAttempt.objects.update(attempt_time=timezone.now() - timezone.timedelta(days=365))
    assert log_in(client, admin.username, PASSWORD).status_code == 429


def test_the_lockout_page_escapes_the_typed_name(client, limit):
    name = "<script>alert(1)</script>"
    fail(client, name, limit)
    text = log_in(client, name, WRONG).content.decode()
    assert name not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_a_form_with_a_field_missing_is_not_an_attempt(client, admin, limit):
    for _ in range(limit + 1):
        assert client.post(reverse("login"), {"username": admin.username}, REMOTE_ADDR=HOME).status_code == 200
    assert not AccessAttempt.objects.exists() and not actions()
    assert log_in(client, admin.username, PASSWORD).status_code == 302


# --- the audit log -------------------------------------------------------------------------


def test_every_attempt_is_in_the_audit_log_and_no_password_is(client, admin, limit):
    fail(client, admin.username, limit + 1)
    log_in(client, admin.username, PASSWORD, ELSEWHERE)
    assert actions() == [
        *[lockouts.LOGIN_FAILED] * (limit - 1),
        lockouts.LOGIN_LOCKED_OUT,
        lockouts.LOGIN_REFUSED,
        lockouts.LOGIN_SUCCEEDED,
    ]
    first, *_, locked, refused, success = AuditEntry.objects.filter(object_type="login").order_by("seq")
    assert first.actor_name == "portwatch" and first.object_repr == f"{admin.username} from {HOME}"
    assert first.after == {"username": admin.username, "client": HOME, "failures": 1, "limit": limit}
    assert locked.summary == f"Locked out {admin.username} from {HOME} for 15 minutes after {limit} failed logins."
    assert refused.after["failures"] == limit + 1
    assert success.actor == admin and success.after["client"] == ELSEWHERE
    stored = "".join(str(value) for value in AuditEntry.objects.values_list("summary", "before", "after"))
    assert WRONG not in stored and PASSWORD not in stored
    assert audit.verify() == (limit + 2, [])


# --- where a request comes from -------------------------------------------------------------


def test_x_forwarded_for_is_ignored_without_the_tls_proxy(client, admin, limit):
    # Each attempt claims another address: all of them are counted for the socket's.
    codes = [
        log_in(client, admin.username, WRONG, HOME, x_forwarded_for=f"203.0.113.{n}").status_code for n in range(limit)
    ]
    assert codes == [200] * (limit - 1) + [429]
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {HOME}


@override_settings(BEHIND_TLS_PROXY=True)
def test_behind_the_tls_proxy_the_address_the_proxy_saw_counts(client, admin, limit):
    proxy = "127.0.0.1"
    # The client writes what it likes on the left; the proxy appends what it saw.
    codes = [
        log_in(client, admin.username, WRONG, proxy, x_forwarded_for=f"203.0.113.{n}, {HOME}").status_code
        for n in range(limit)
    ]
    assert codes == [200] * (limit - 1) + [429]
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {HOME}
    assert log_in(client, admin.username, PASSWORD, proxy, x_forwarded_for=ELSEWHERE).status_code == 302


@pytest.mark.parametrize(
    ("behind_proxy", "forwarded", "expected"),
    [
        (False, "198.18.0.99", "127.0.0.9"),
        (True, "198.18.0.99", "198.18.0.99"),
        (True, "6.6.6.6, 198.18.0.99", "198.18.0.99"),
        (True, "2001:db8::1", "2001:db8::1"),
        (True, "6.6.6.6, not-an-address", "127.0.0.9"),
        (True, "", "127.0.0.9"),
    ],
)
def test_client_address(settings, behind_proxy, forwarded, expected):
    settings.BEHIND_TLS_PROXY = behind_proxy
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.9", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


# --- admins unlock --------------------------------------------------------------------------------


def test_admins_see_the_lockouts_and_unlock_them(client, admin, viewer, limit):
    fail(Client(), viewer.username, limit)
    client.force_login(admin)
    page = client.get(reverse("lockout-list")).content.decode()
    assert viewer.username in page and HOME in page and "Unlock" in page
    response = client.post(reverse("lockout-unlock"), {"username": viewer.username, "address": HOME})
    assert response.status_code == 302 and response.url == reverse("lockout-list")
    assert "Nobody is locked out" in client.get(reverse("lockout-list")).content.decode()
    entry = AuditEntry.objects.get(action=lockouts.LOGIN_UNLOCKED)
    assert entry.actor == admin and entry.object_repr == f"{viewer.username} from {HOME}"
    assert log_in(Client(), viewer.username, PASSWORD).status_code == 302


@pytest.mark.parametrize("role", [None, Role.VIEWER, Role.REVIEWER], ids=["outsider", "viewer", "reviewer"])
def test_nobody_else_sees_or_lifts_a_lockout(client, viewer, limit, role):
    fail(Client(), viewer.username, limit)
    client.force_login(make_user(f"someone-{role}", role))
    assert client.get(reverse("lockout-list")).status_code == 403
    assert client.post(reverse("lockout-unlock"), {"username": viewer.username, "address": HOME}).status_code == 403
    assert lockouts.current_lockouts().count() == 1
    assert not AuditEntry.objects.filter(action=lockouts.LOGIN_UNLOCKED).exists()


def test_unlocking_needs_the_csrf_token(admin, viewer, limit):
    fail(Client(), viewer.username, limit)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin)
    data = {"username": viewer.username, "address": HOME}
    assert browser.post(reverse("lockout-unlock"), data).status_code == 403
    assert lockouts.current_lockouts().count() == 1
    browser.get(reverse("lockout-list"))
    data["csrfmiddlewaretoken"] = browser.cookies["csrftoken"].value
    assert browser.post(reverse("lockout-unlock"), data).status_code == 302
    assert not lockouts.current_lockouts().exists()


def test_the_command_line_lists_and_unlocks_with_an_audit_entry(viewer, limit, capsys):
    fail(Client(), viewer.username, limit, HOME)
    fail(Client(), viewer.username, limit, ELSEWHERE)
    call_command("unlock_login", "--list")
    assert len([line for line in capsys.readouterr().out.splitlines() if line.startswith(viewer.username)]) == 2
    call_command("unlock_login", viewer.username, "--address", HOME)
    assert [row["ip_address"] for row in lockouts.current_lockouts()] == [ELSEWHERE]
    call_command("unlock_login", viewer.username)
    assert not lockouts.current_lockouts().exists()
    entries = AuditEntry.objects.filter(action=lockouts.LOGIN_UNLOCKED).order_by("seq")
    assert [(entry.actor_name, entry.after["client"]) for entry in entries] == [
        ("portwatch", HOME),
        ("portwatch", ELSEWHERE),
    ]
    assert "from the command line" in entries[0].summary


# --- the real web server ------------------------------------------------------------------------

WEB_PASSWORD = "a web server test password 42"


@pytest.fixture
def web_user(transactional_db):
    """A viewer the web process can check the password of (it uses the product's hashers, not the tests')."""
    user = User.objects.create(username="wendy", password=PBKDF2PasswordHasher().encode(WEB_PASSWORD, "websalt"))
    user.groups.add(Group.objects.get(name=GROUP_NAMES[Role.VIEWER]))
    return user


def form_login(base_url: str, username: str, password: str) -> requests.Response:
    """The login form as a browser sends it: the page first (CSRF cookie and token), then the POST."""
    session = requests.Session()
    page = session.get(f"{base_url}/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(
        f"{base_url}/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        allow_redirects=False,
        timeout=60,
    )


@pytest.fixture
def two_web_servers(tmp_path, web_user):
    """Two gunicorn servers (two workers each) on the suite's database and Redis, as `make run` runs one."""
    servers = [WebProcess(tmp_path / f"web-{n}.log", LOGIN_FAILURE_LIMIT=3) for n in (1, 2)]
    yield servers
    for server in servers:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_a_lockout_made_on_one_web_server_holds_on_another(two_web_servers, web_user):
    first, second = two_web_servers
    assert [form_login(first.url, web_user.username, WRONG).status_code for _ in range(2)] == [200, 200]
    assert form_login(second.url, web_user.username, WRONG).status_code == 429
    for server in (first, second):
        response = form_login(server.url, web_user.username, WEB_PASSWORD)
        assert response.status_code == 429 and "Too many failed logins" in response.text
    assert lockouts.unlock(None, web_user.username, "127.0.0.1") == 1
    response = form_login(first.url, web_user.username, WEB_PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert actions() == [
        lockouts.LOGIN_FAILED,
        lockouts.LOGIN_FAILED,
        lockouts.LOGIN_LOCKED_OUT,
        lockouts.LOGIN_REFUSED,
        lockouts.LOGIN_REFUSED,
        lockouts.LOGIN_UNLOCKED,
        lockouts.LOGIN_SUCCEEDED,
    ]


@pytest.mark.django_db(transaction=True)
def test_failures_at_the_same_moment_on_two_servers_keep_the_audit_chain_whole(two_web_servers, web_user):
    names = [f"guess-{n}" for n in range(8)]
    codes = []

    def attempt(index, name):
        codes.append(form_login(two_web_servers[index % 2].url, name, WRONG).status_code)

    threads = [threading.Thread(target=attempt, args=(index, name)) for index, name in enumerate(names)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * len(names)
    assert sorted(AuditEntry.objects.filter(action=lockouts.LOGIN_FAILED).values_list("object_id", flat=True)) == names
    assert audit.verify() == (len(names), [])
