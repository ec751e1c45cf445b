"""Every page requires login, and each role sees exactly what it may.

The matrix below names every URL of the project; a URL added without an
entry fails ``test_every_url_is_in_the_matrix``.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from alerts.choices import ChannelKind, NotificationStatus
from alerts.models import AlertRule, Channel, Mute, Notification
from inventory.models import AssignmentRule, Host, PortRule, RiskRule, Service, Zone
from portwatch.roles import Role
from reach.models import SegmentationRule, VantagePoint
from scans.models import ScanProfile, ScanRun, ScanTarget, ScopeRule
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

# Endpoints for machines (a Prometheus scrape, a probe): no login page to be sent to,
# a 401/403 instead; health answers 503 when a check fails (here: no workers run).
MACHINE = {"metrics", "health"}
# URLs that work without a role: logging in (single sign-on too: 404 unless configured), and managing one's own account.
PUBLIC = {"login", "logout", "oidc-start", "oidc_authentication_callback"}
OWN_ACCOUNT = {"password_change", "password_change_done", "api-token"}


@pytest.fixture
def objects(db):
    from django.utils import timezone

    zone = Zone.default()
    target = ScanTarget.objects.create(
        name="t", zone=zone, targets="127.0.0.1", profile=ScanProfile.objects.get(slug="quick")
    )
    run = ScanRun.objects.create(target=target, zone=zone, trigger="manual", targets="127.0.0.1", status="succeeded")
    now = timezone.now()
    host = Host.objects.create(zone=zone, address="127.0.0.1", first_seen=now, last_seen=now, last_scanned=now)
    profile = ScanProfile.objects.create(slug="custom", name="Custom")
    rule = ScopeRule.objects.create(network="198.51.100.0/24", action="allow", reason="test")
    Service.objects.create(
        host=host, protocol="tcp", port=22, state="open", first_seen=now, last_seen=now, last_changed=now
    )
    port_rule = PortRule.objects.create(
        scope="global", protocol="tcp", port_start=22, port_end=22, decision="approved", justification="ssh"
    )
    assignment = AssignmentRule.objects.create(cidr="127.0.0.0/8", owner="ops")
    channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
    notification = Notification.objects.create(channel=channel, dedupe_key="n", status=NotificationStatus.FAILED)
    mute = Mute.objects.create(ends_at=now + timezone.timedelta(hours=1), reason="window")
    vantage = VantagePoint.objects.create(name="office-lan")
    segmentation_rule = SegmentationRule.objects.create(
        scope="global", protocol="tcp", port_start=5432, port_end=5432, mode="deny", justification="no db"
    )
    segmentation_rule.vantage_points.set([vantage])
    return {
        "segrule": segmentation_rule.public_id,
        "channel": channel.public_id,
        "notification": notification.public_id,
        "alertrule": AlertRule.objects.first().pk,
        "mute": mute.pk,
        "port": (host.public_id, "tcp", 22),
        "portrule": port_rule.public_id,
        "assignment": assignment.pk,
        "target": target.public_id,
        "run": run.public_id,
        "host": host.public_id,
        "profile": profile.slug,
        "zone": zone.name,
        "rule": rule.pk,
        "risk": RiskRule.objects.get(port=6379).pk,
        "vantage": vantage.name,
    }


# (url name, method, least role, argument key or None)
MATRIX = [
    ("overview", "get", Role.VIEWER, None),
    # Your own settings (time zone): any role, for oneself only.
    ("personal-settings", "get", Role.VIEWER, None),
    ("personal-settings", "post", Role.VIEWER, None),
    ("change-list", "get", Role.VIEWER, None),
    ("metrics", "get", Role.VIEWER, None),
    ("health", "get", Role.VIEWER, None),
    ("host-list", "get", Role.VIEWER, None),
    ("host-detail", "get", Role.VIEWER, "host"),
    ("host-edit", "get", Role.REVIEWER, "host"),
    ("host-edit", "post", Role.REVIEWER, "host"),
    ("port-detail", "get", Role.VIEWER, "port"),
    ("port-list", "get", Role.VIEWER, None),
    ("review-queue", "get", Role.VIEWER, None),
    ("review-decide", "post", Role.REVIEWER, None),
    ("rule-list", "get", Role.VIEWER, None),
    ("rule-detail", "get", Role.VIEWER, "portrule"),
    ("rule-create", "get", Role.REVIEWER, None),
    ("rule-create", "post", Role.REVIEWER, None),
    ("rule-edit", "get", Role.REVIEWER, "portrule"),
    ("rule-edit", "post", Role.REVIEWER, "portrule"),
    ("rule-delete", "post", Role.REVIEWER, "portrule"),
    ("assignment-list", "get", Role.VIEWER, None),
    ("assignment-create", "get", Role.ADMIN, None),
    ("assignment-create", "post", Role.ADMIN, None),
    ("assignment-edit", "get", Role.ADMIN, "assignment"),
    ("assignment-edit", "post", Role.ADMIN, "assignment"),
    ("assignment-delete", "post", Role.ADMIN, "assignment"),
    ("zone-list", "get", Role.VIEWER, None),
    ("audit-list", "get", Role.VIEWER, None),
    ("risk-list", "get", Role.VIEWER, None),
    ("risk-create", "get", Role.ADMIN, None),
    ("risk-create", "post", Role.ADMIN, None),
    ("risk-edit", "get", Role.ADMIN, "risk"),
    ("risk-edit", "post", Role.ADMIN, "risk"),
    ("risk-delete", "post", Role.ADMIN, "risk"),
    ("zone-create", "get", Role.ADMIN, None),
    ("zone-create", "post", Role.ADMIN, None),
    ("zone-edit", "get", Role.ADMIN, "zone"),
    ("target-list", "get", Role.VIEWER, None),
    ("target-detail", "get", Role.VIEWER, "target"),
    ("target-create", "get", Role.ADMIN, None),
    ("target-create", "post", Role.ADMIN, None),
    ("target-edit", "get", Role.ADMIN, "target"),
    ("target-edit", "post", Role.ADMIN, "target"),
    ("target-scan", "post", Role.ADMIN, "target"),
    ("run-list", "get", Role.VIEWER, None),
    ("run-detail", "get", Role.VIEWER, "run"),
    ("run-cancel", "post", Role.ADMIN, "run"),
    ("profile-list", "get", Role.VIEWER, None),
    ("profile-create", "get", Role.ADMIN, None),
    ("profile-create", "post", Role.ADMIN, None),
    ("profile-edit", "get", Role.ADMIN, "profile"),
    ("scope", "get", Role.VIEWER, None),
    ("scope", "post", Role.ADMIN, None),
    ("scope-delete", "post", Role.ADMIN, "rule"),
    ("import", "get", Role.ADMIN, None),
    ("import", "post", Role.ADMIN, None),
    ("notification-list", "get", Role.VIEWER, None),
    ("notification-detail", "get", Role.VIEWER, "notification"),
    ("notification-retry", "post", Role.ADMIN, "notification"),
    ("notification-dismiss", "post", Role.ADMIN, "notification"),
    ("channel-list", "get", Role.ADMIN, None),
    ("channel-create", "get", Role.ADMIN, None),
    ("channel-create", "post", Role.ADMIN, None),
    ("channel-detail", "get", Role.ADMIN, "channel"),
    ("channel-edit", "get", Role.ADMIN, "channel"),
    ("channel-edit", "post", Role.ADMIN, "channel"),
    ("channel-test", "post", Role.ADMIN, "channel"),
    ("channel-delete", "post", Role.ADMIN, "channel"),
    ("alert-rule-list", "get", Role.VIEWER, None),
    ("alert-rule-create", "get", Role.ADMIN, None),
    ("alert-rule-create", "post", Role.ADMIN, None),
    ("alert-rule-edit", "get", Role.ADMIN, "alertrule"),
    ("alert-rule-edit", "post", Role.ADMIN, "alertrule"),
    ("alert-rule-delete", "post", Role.ADMIN, "alertrule"),
    ("mute-list", "get", Role.VIEWER, None),
    ("mute-create", "get", Role.REVIEWER, None),
    ("mute-create", "post", Role.REVIEWER, None),
    ("mute-end", "post", Role.REVIEWER, "mute"),
    ("vantage-list", "get", Role.VIEWER, None),
    ("vantage-detail", "get", Role.VIEWER, "vantage"),
    ("vantage-create", "get", Role.ADMIN, None),
    ("vantage-create", "post", Role.ADMIN, None),
    ("vantage-edit", "get", Role.ADMIN, "vantage"),
    ("vantage-edit", "post", Role.ADMIN, "vantage"),
    ("vantage-delete", "post", Role.ADMIN, "vantage"),
    ("segmentation-rule-list", "get", Role.VIEWER, None),
    ("segmentation-rule-detail", "get", Role.VIEWER, "segrule"),
    ("segmentation-rule-create", "get", Role.ADMIN, None),
    ("segmentation-rule-create", "post", Role.ADMIN, None),
    ("segmentation-rule-edit", "get", Role.ADMIN, "segrule"),
    ("segmentation-rule-edit", "post", Role.ADMIN, "segrule"),
    ("segmentation-rule-delete", "post", Role.ADMIN, "segrule"),
    ("segmentation-violation-list", "get", Role.VIEWER, None),
    ("exposure-matrix", "get", Role.VIEWER, None),
    ("exposure-cell", "get", Role.VIEWER, "vantage"),
    ("listener-upload", "get", Role.REVIEWER, None),
    ("listener-upload", "post", Role.REVIEWER, None),
    ("certificate-list", "get", Role.VIEWER, None),
    ("lockout-list", "get", Role.ADMIN, None),
    ("lockout-unlock", "post", Role.ADMIN, None),
]
CASES = [pytest.param(*case, id=f"{case[1]}-{case[0]}") for case in MATRIX]


def _names(resolver=None):
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            # The REST API has its own matrix: tests/test_api_access.py.
            if pattern.namespace != "api":
                yield from _names(pattern)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield pattern.name


def test_every_url_is_in_the_matrix():
    assert set(_names()) - PUBLIC - OWN_ACCOUNT == {name for name, *_ in MATRIX}


def _request(client, objects, name, method, key):
    args = objects[key] if key else ()
    url = reverse(name, args=args if isinstance(args, tuple) else [args])
    return getattr(client, method)(url)


@pytest.mark.parametrize(("name", "method", "least", "key"), CASES)
def test_anonymous_users_are_sent_to_login(client, objects, name, method, least, key):
    response = _request(client, objects, name, method, key)
    if name in MACHINE:
        assert response.status_code in (401, 403)
        return
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize(("name", "method", "least", "key"), CASES)
@pytest.mark.parametrize(
    "role", [None, Role.VIEWER, Role.REVIEWER, Role.ADMIN], ids=["outsider", "viewer", "reviewer", "admin"]
)
def test_each_role_gets_exactly_what_it_may(client, objects, name, method, least, key, role):
    client.force_login(make_user(f"user-{role}", role))
    response = _request(client, objects, name, method, key)
    if role is not None and role >= least:
        # Allowed: the page, a redirect after a change, or a form error.
        allowed = (200, 302, 400, 503) if name == "health" else (200, 302, 400)
        assert response.status_code in allowed, response.content[:500]
    else:
        assert response.status_code == 403


def test_login_page_is_public_and_logs_in(client, admin):
    from tests.conftest import PASSWORD

    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": admin.username, "password": PASSWORD})
    assert response.status_code == 302 and response.url == reverse("overview")
    assert client.get(reverse("overview")).status_code == 200
