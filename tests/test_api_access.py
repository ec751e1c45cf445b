"""Every API endpoint requires a login, and each role gets exactly what it may.

The matrix names every (URL, method) the API serves; the list is read from
the URL resolver, so an endpoint added without an entry fails
``test_every_api_endpoint_is_in_the_matrix``. Roles are the pages' roles
(tests/test_access.py).
"""

import pytest
from django.urls import URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from alerts.choices import ChannelKind, NotificationStatus
from alerts.models import AlertRule, Channel, Mute, Notification
from inventory.models import Host, PortRule, Service, Zone
from portwatch.roles import Role
from reach.models import SegmentationRule, VantagePoint
from scans.models import Change, ScanProfile, ScanRun, ScanTarget, ScopeRule
from tests.conftest import make_user
from tests.factories import observe
from tests.tls_lab import make_certificate, put_certificate

pytestmark = pytest.mark.django_db

V, R, A = Role.VIEWER, Role.REVIEWER, Role.ADMIN

# (URL name in the "api" namespace, method): the least role.
MATRIX = {
    ("api-root", "get"): V,
    ("schema", "get"): V,
    ("docs", "get"): V,
    ("zone-list", "get"): V,
    ("zone-detail", "get"): V,
    ("host-list", "get"): V,
    ("host-detail", "get"): V,
    ("service-list", "get"): V,
    ("service-detail", "get"): V,
    ("rule-list", "get"): V,
    ("rule-list", "post"): R,
    ("rule-detail", "get"): V,
    ("rule-detail", "put"): R,
    ("rule-detail", "patch"): R,
    ("rule-detail", "delete"): R,
    ("review-list", "get"): V,
    ("review-list", "post"): R,
    ("change-list", "get"): V,
    ("change-detail", "get"): V,
    ("target-list", "get"): V,
    ("target-list", "post"): A,
    ("target-detail", "get"): V,
    ("target-detail", "put"): A,
    ("target-detail", "patch"): A,
    ("target-detail", "delete"): A,
    ("schedule-list", "get"): V,
    ("schedule-detail", "get"): V,
    ("schedule-detail", "put"): A,
    ("schedule-detail", "patch"): A,
    ("profile-list", "get"): V,
    ("profile-list", "post"): A,
    ("profile-detail", "get"): V,
    ("profile-detail", "put"): A,
    ("profile-detail", "patch"): A,
    ("profile-detail", "delete"): A,
    ("run-list", "get"): V,
    ("run-list", "post"): A,
    ("run-detail", "get"): V,
    ("run-cancel", "post"): A,
    ("import-list", "post"): A,
    # The scan scope: read by everyone, changed by admins, as on the Scope page.
    ("scope-rule-list", "get"): V,
    ("scope-rule-list", "post"): A,
    ("scope-rule-detail", "get"): V,
    ("scope-rule-detail", "delete"): A,
    # Channels hold addresses and tokens: admins only, even to read.
    ("channel-list", "get"): A,
    ("channel-list", "post"): A,
    ("channel-detail", "get"): A,
    ("channel-detail", "put"): A,
    ("channel-detail", "patch"): A,
    ("channel-detail", "delete"): A,
    ("channel-test", "post"): A,
    ("alert-rule-list", "get"): V,
    ("alert-rule-list", "post"): A,
    ("alert-rule-detail", "get"): V,
    ("alert-rule-detail", "put"): A,
    ("alert-rule-detail", "patch"): A,
    ("alert-rule-detail", "delete"): A,
    ("notification-list", "get"): V,
    ("notification-detail", "get"): V,
    ("notification-retry", "post"): A,
    ("notification-dismiss", "post"): A,
    ("mute-list", "get"): V,
    ("mute-list", "post"): R,
    ("mute-detail", "get"): V,
    ("mute-end", "post"): R,
    # Vantage points: read by everyone, changed by admins, as on their pages.
    ("vantage-point-list", "get"): V,
    ("vantage-point-list", "post"): A,
    ("vantage-point-detail", "get"): V,
    ("vantage-point-detail", "put"): A,
    ("vantage-point-detail", "patch"): A,
    ("vantage-point-detail", "delete"): A,
    ("port-view-list", "get"): V,
    # The exposure matrix and a cell's list: read by everyone, as on their pages.
    ("exposure-matrix-list", "get"): V,
    ("exposure-list", "get"): V,
    # Segmentation rules: read by everyone, written by admins, as on the segmentation pages.
    ("segmentation-rule-list", "get"): V,
    ("segmentation-rule-list", "post"): A,
    ("segmentation-rule-detail", "get"): V,
    ("segmentation-rule-detail", "put"): A,
    ("segmentation-rule-detail", "patch"): A,
    ("segmentation-rule-detail", "delete"): A,
    ("segmentation-violation-list", "get"): V,
    # Host reports: read by everyone; posted by reviewers (and reporters' tokens: test_listeners.py).
    ("host-report-list", "get"): V,
    ("host-report-list", "post"): R,
    ("host-listeners-detail", "get"): V,
    # Certificates: read by everyone, as on their page; nothing to write.
    ("certificate-list", "get"): V,
    ("certificate-detail", "get"): V,
    ("token-list", "get"): A,
    ("token-list", "post"): A,
    ("token-detail", "delete"): A,
}
CASES = [pytest.param(name, method, least, id=f"{method}-{name}") for (name, method), least in MATRIX.items()]
PERSONAS = {"outsider": None, "viewer": V, "reviewer": R, "admin": A}


def _api_patterns():
    for pattern in get_resolver().url_patterns:
        if isinstance(pattern, URLResolver) and pattern.namespace == "api":
            return pattern.url_patterns
    raise AssertionError("the API is not mounted under the 'api' namespace")


def _methods(callback) -> set[str]:
    # HEAD and OPTIONS answer like GET (DRF checks the same permissions).
    actions = getattr(callback, "actions", None)
    if actions is not None:  # a viewset route: its method -> action map
        return set(actions) - {"options", "head"}
    view_class = callback.cls
    return {name for name in view_class.http_method_names if hasattr(view_class, name)} - {"options", "head"}


def served_endpoints() -> set[tuple[str, str]]:
    return {(pattern.name, method) for pattern in _api_patterns() for method in _methods(pattern.callback)}


def test_every_api_endpoint_is_in_the_matrix():
    assert served_endpoints() == set(MATRIX)


def test_every_api_route_authenticates_in_drf():
    """A token request is anonymous to LoginRequiredMiddleware: the API views opt out of it."""
    for pattern in _api_patterns():
        if pattern.name != "docs":  # the docs page: login_required sends a browser to the login page
            assert getattr(pattern.callback, "login_required", True) is False, pattern.name


@pytest.fixture
def objects(db):
    now = timezone.now()
    observe({"127.65.0.1": [22]})
    zone = Zone.default()
    host = Host.objects.get()
    target = ScanTarget.objects.create(
        name="t", zone=zone, targets="127.65.0.1", profile=ScanProfile.objects.get(slug="quick")
    )
    run = ScanRun.objects.create(target=target, zone=zone, trigger="manual", targets="127.65.0.1")
    profile = ScanProfile.objects.create(slug="custom", name="Custom")
    rule = PortRule.objects.create(
        scope="global", protocol="tcp", port_start=22, port_end=22, decision="approved", justification="ssh"
    )
    channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
    notification = Notification.objects.create(channel=channel, dedupe_key="n", status=NotificationStatus.FAILED)
    mute = Mute.objects.create(ends_at=now + timezone.timedelta(hours=1), reason="window")
    segmentation_rule = SegmentationRule.objects.create(
        scope="global", protocol="tcp", port_start=5432, port_end=5432, mode="deny", justification="no db"
    )
    office = VantagePoint.objects.create(name="office-lan")
    segmentation_rule.vantage_points.set([office])
    holder = make_user("tina-token", Role.VIEWER)
    Token.objects.create(user=holder)
    return {
        "zone": {"name": zone.name},
        "host": {"id": host.public_id},
        "service": {"pk": Service.objects.get().pk},
        "rule": {"id": rule.public_id},
        "change": {"id": Change.objects.first().public_id},
        "target": {"id": target.public_id},
        "schedule": {"target": target.public_id},
        "profile": {"slug": profile.slug},
        "run": {"id": run.public_id},
        "channel": {"id": channel.public_id},
        "alert-rule": {"pk": AlertRule.objects.first().pk},
        "notification": {"id": notification.public_id},
        "mute": {"pk": mute.pk},
        "token": {"username": holder.username},
        "segmentation-rule": {"id": segmentation_rule.public_id},
        "scope-rule": {"pk": ScopeRule.objects.create(network="198.18.0.0/15", action="allow", reason="lab").pk},
        "vantage-point": {"name": office.name},
        "host-listeners": {"public_id": host.public_id},
        "certificate": {"id": put_certificate(Service.objects.get(), make_certificate("api.lab")).public_id},
    }


def _url(objects, name) -> str:
    basename, _, route = name.rpartition("-")
    if route in ("list", "root") or name in ("schema", "docs"):
        return reverse(f"api:{name}")
    return reverse(f"api:{name}", kwargs=objects[basename])


def _request(client, objects, name, method):
    return getattr(client, method)(_url(objects, name), format="json")


@pytest.mark.parametrize(("name", "method", "least"), CASES)
def test_anonymous_requests_get_no_data(objects, name, method, least):
    response = _request(APIClient(), objects, name, method)
    if name == "docs":
        # A page for people: the login page first.
        assert response.status_code == 302 and response.url.startswith(reverse("login"))
    else:
        assert response.status_code == 401
        if response["Content-Type"].startswith("application/json"):
            assert set(response.json()) == {"detail"}
        else:  # the schema's own format (YAML)
            assert response.content.startswith(b"detail:")


@pytest.mark.parametrize(("name", "method", "least"), CASES)
@pytest.mark.parametrize("persona", list(PERSONAS))
def test_each_role_gets_exactly_what_it_may(objects, name, method, least, persona):
    role = PERSONAS[persona]
    client = APIClient()
    if name == "docs":
        client.force_login(make_user(f"api-{persona}", role))
    else:
        token = Token.objects.create(user=make_user(f"api-{persona}", role))
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = _request(client, objects, name, method)
    if role is not None and role >= least:
        # Allowed: the data, a change made, a refusal of the (empty) input, or a conflict.
        assert response.status_code in (200, 201, 202, 204, 400, 409), (response.status_code, response.content[:300])
    else:
        assert response.status_code == 403, response.content[:300]


@pytest.mark.parametrize(("persona", "expected"), [("outsider", 403), ("viewer", 200)])
def test_a_session_gets_the_same_answer_as_a_token(client, persona, expected):
    client.force_login(make_user(f"session-{persona}", PERSONAS[persona]))
    assert client.get(reverse("api:host-list")).status_code == expected
    assert client.get(reverse("api:channel-list")).status_code == 403
