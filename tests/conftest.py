"""Shared fixtures: personas, seed data, the loopback, namespace and vantage labs, a real Celery worker."""

import importlib
import os
import shutil

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.models import Group, User

from portwatch.roles import GROUP_NAMES, Role
from tests.lab import LoopbackLab
from tests.netns import NetnsLab, netns_unavailable_reason
from tests.processes import ROOT, WorkerProcess, process_env, wait_for  # noqa: F401 - shared with tests
from tests.vantage_lab import VantageLab

# The embedded default's run (tests/settings.py): only tests marked ``sqlite``.
SQLITE_RUN = os.environ.get("PORTWATCH_TEST_DB") == "sqlite"


def pytest_configure(config):
    if SQLITE_RUN:
        return
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.exit(
            "The test suite runs on PostgreSQL and Redis. Run it with `make test`, which starts "
            "throwaway servers, or set DATABASE_URL=postgres://... and REDIS_URL=redis://... "
            "(`make test-sqlite` runs the tests marked sqlite on the embedded SQLite default).",
            returncode=4,
        )


def pytest_collection_modifyitems(config, items):
    """On SQLite, only the tests that say they hold there too."""
    if not SQLITE_RUN:
        return
    selected = [item for item in items if item.get_closest_marker("sqlite")]
    if len(selected) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if not item.get_closest_marker("sqlite")])
        items[:] = selected


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("postgresql")
    if SQLITE_RUN and marker is not None:
        pytest.skip(f"needs PostgreSQL: {marker.args[0] if marker.args else 'not on the SQLite default'}")


def pytest_sessionfinish(session, exitstatus):
    """``make test PYTEST_ARGS=...`` narrows both runs: a subset with no SQLite test in it is not a failure."""
    narrowed = session.config.option.keyword or session.config.option.markexpr or session.config.args != ["tests"]
    if SQLITE_RUN and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and narrowed:
        session.exitstatus = pytest.ExitCode.OK


def pytest_unconfigure(config):
    if SQLITE_RUN:
        # The run's own var directory (tests/settings.py): database file, WAL, broker.
        shutil.rmtree(settings.VAR_DIR, ignore_errors=True)


# --- seed data -----------------------------------------------------------------

_SEED_MIGRATIONS = [
    "inventory.migrations.0002_default_zone_and_roles",
    "inventory.migrations.0011_builtin_risk_rules",
    "scans.migrations.0002_builtin_profiles",
    "scans.migrations.0004_default_scope",
    "scans.migrations.0017_certificate_changes_and_tls_profile",
    "scans.migrations.0018_fast_discovery",
    "alerts.migrations.0002_default_rules",
    "alerts.migrations.0005_segmentation_rule_and_home_only_host_rules",
    "alerts.migrations.0006_listener_bind_scopes",
    "alerts.migrations.0007_workers_watch",
    "certs.migrations.0002_builtin_alert_rule",
]


def seed_data() -> None:
    """What the data migrations create; transactional tests flush it away."""
    for module in _SEED_MIGRATIONS:
        importlib.import_module(module).create(django_apps, None)


@pytest.fixture(autouse=True)
def _seed(request):
    marker = request.node.get_closest_marker("django_db")
    uses_db = marker is not None or {"db", "transactional_db"} & set(request.fixturenames)
    if uses_db:
        transactional = "transactional_db" in request.fixturenames or (marker and marker.kwargs.get("transaction"))
        request.getfixturevalue("transactional_db" if transactional else "db")
        seed_data()
        if SQLITE_RUN:
            # A transactional test's flush empties SQLite's tables row by row,
            # in no set order: the triggers of the kept counts (tallies) may
            # write into their table after it was emptied. Count from scratch.
            from tallies import maintenance

            maintenance.rebuild()


@pytest.fixture(autouse=True)
def _no_token_throttle_carried_over():
    """Every test client calls from 127.0.0.1: one test's bad API tokens must not count in the next."""
    yield
    from portwatch.api.throttle import TokenFailureThrottle

    TokenFailureThrottle("127.0.0.1").forget()


# --- personas ------------------------------------------------------------------

PASSWORD = "correct horse battery staple"


def make_user(username: str, role: Role | None) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD)
    if role is not None:
        user.groups.add(Group.objects.get(name=GROUP_NAMES[role]))
    return user


@pytest.fixture
def admin(db):
    return make_user("alice-admin", Role.ADMIN)


@pytest.fixture
def reviewer(db):
    return make_user("rita-reviewer", Role.REVIEWER)


@pytest.fixture
def viewer(db):
    return make_user("victor-viewer", Role.VIEWER)


@pytest.fixture
def outsider(db):
    """Logged in, but in no role group."""
    return make_user("oscar-outsider", None)


def _client_for(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def as_admin(client, admin):
    return _client_for(client, admin)


@pytest.fixture
def as_viewer(client, viewer):
    return _client_for(client, viewer)


# --- the loopback lab -------------------------------------------------------------


@pytest.fixture
def receiver():
    """A real webhook receiver on loopback (tests.receivers): what alerts are sent to."""
    from tests.receivers import WebhookReceiver

    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def lab():
    lab = LoopbackLab()
    yield lab
    lab.stop()


@pytest.fixture
def netns_lab(tmp_path):
    """The network-namespace lab (tests/netns.py), or a skip saying why not."""
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = NetnsLab(tmp_path)
    yield lab
    lab.destroy()


@pytest.fixture
def vantage_lab(tmp_path):
    """The vantage lab (tests/vantage_lab.py): scanners "dc1-app" and "office-lan", three hosts; or a skip."""
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with VantageLab(tmp_path, vantages=["dc1-app", "office-lan"], hosts=3) as lab:
        yield lab


# --- real processes -----------------------------------------------------------------


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    """A real worker for this test, on the Redis the suite runs with."""
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    worker = WorkerProcess(tmp_path / "worker.log")
    yield worker
    worker.stop()
