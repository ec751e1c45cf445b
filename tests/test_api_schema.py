"""The OpenAPI schema is valid and complete, and a schema-based fuzz run finds no server error.

The fuzz run is schemathesis's own command line against a live PortWatch
(pytest-django's ``live_server``, on loopback) with an admin's token: every
operation, positive and negative inputs, a bounded number of examples and a
fixed seed (``PORTWATCH_FUZZ_SEED`` picks another, ``PORTWATCH_FUZZ_EXAMPLES``
more examples). Only ``not_a_server_error`` is checked: a 5xx is a bug
whatever the input.
"""

import io
import ipaddress
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token

from alerts.choices import ChannelKind, NotificationStatus
from alerts.models import Channel, Mute, Notification
from inventory.models import PortRule, Service, Zone
from portwatch.roles import Role
from reach import segmentation
from reach.models import SegmentationRule, VantagePoint
from scans.models import ScanProfile, ScanRun, ScanTarget, ScopeRule
from tests.conftest import make_user
from tests.factories import observe
from tests.test_api_access import MATRIX
from tests.tls_lab import make_certificate, put_certificate

FUZZ_SEED = int(os.environ.get("PORTWATCH_FUZZ_SEED", "7"))
FUZZ_EXAMPLES = int(os.environ.get("PORTWATCH_FUZZ_EXAMPLES", "10"))
FUZZ_PHASES = os.environ.get("PORTWATCH_FUZZ_PHASES", "examples,coverage,fuzzing")
# Fuzzing sends valid and invalid input alike. The coverage phase sends each
# operation the boundary values of its parameters (valid ones only: its
# invalid-input sweep takes minutes on two cores and fuzzing sends invalid
# input anyway), without probing every path with every other HTTP method
# (DRF answers those with 405 before any of our code runs).
FUZZ_CONFIG = """
generation.mode = "all"

[phases.coverage]
unexpected-methods = []
generate-duplicate-query-parameters = false
generation.mode = "positive"
"""


def generate_schema() -> tuple[dict, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out, stderr=err)
    return yaml.safe_load(out.getvalue()), err.getvalue()


@pytest.mark.django_db
def test_the_schema_is_valid_openapi_3_without_warnings():
    schema, messages = generate_schema()  # --fail-on-warn raises on any warning or error
    assert schema["openapi"].startswith("3.")
    assert "Warning" not in messages and "Error" not in messages
    # Token authentication is declared for every operation.
    assert schema["components"]["securitySchemes"]["tokenAuth"]["type"] == "apiKey"
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert operations and all({"tokenAuth": []} in op["security"] for op in operations)


@pytest.mark.django_db
def test_the_schema_documents_every_endpoint_of_the_matrix():
    schema, _ = generate_schema()
    documented = sum(len(path) for path in schema["paths"].values())
    # The API root, the schema and the docs page are not operations of the API itself.
    assert documented == len(MATRIX) - 3


@pytest.mark.django_db
def test_the_schema_documents_the_scope_and_token_creation_for_scripts():
    schema, _ = generate_schema()
    paths, components = schema["paths"], schema["components"]["schemas"]
    assert set(paths["/api/scope/"]) == {"get", "post"} and set(paths["/api/scope/{id}/"]) == {"get", "delete"}
    assert set(components["ScopeRuleRequest"]["required"]) == {"network", "action", "reason"}
    assert components["ScopeActionEnum"]["enum"] == ["allow", "exclude"]
    assert "403" in paths["/api/scope/{id}/"]["delete"]["responses"]
    create = paths["/api/tokens/"]["post"]
    assert {"201", "400", "409"} <= set(create["responses"])
    new_token = create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"username", "role", "key", "replaced"} <= set(components[new_token]["properties"])


@pytest.mark.django_db
def test_the_schema_documents_segmentation_rules_and_violations():
    schema, _ = generate_schema()
    paths, components = schema["paths"], schema["components"]["schemas"]
    assert set(paths["/api/segmentation-rules/"]) == {"get", "post"}
    assert set(paths["/api/segmentation-rules/{id}/"]) == {"get", "put", "patch", "delete"}
    assert set(paths["/api/segmentation-violations/"]) == {"get"}
    request = components["SegmentationRuleRequest"]
    assert {"mode", "vantage_points", "scope", "port_start", "justification"} <= set(request["required"])
    filters = {p["name"] for p in paths["/api/segmentation-violations/"]["get"]["parameters"]}
    assert {"vantage", "zone", "rule", "cursor", "page_size"} <= filters


def test_the_schema_documents_certificates_with_their_filters():
    schema, _ = generate_schema()
    paths = schema["paths"]
    assert set(paths["/api/certificates/"]) == {"get"}
    assert set(paths["/api/certificates/{id}/"]) == {"get"}
    filters = {p["name"] for p in paths["/api/certificates/"]["get"]["parameters"]}
    assert {"finding", "zone", "q", "host", "port", "cursor", "page_size"} <= filters


def _names_only_resolve_to_loopback(real):
    """Channel forms resolve webhook host names: a fuzzed name must not reach a DNS server."""

    def getaddrinfo(host, *args, **kwargs):
        text = host.decode() if isinstance(host, bytes) else str(host or "")
        try:
            ipaddress.ip_address(text.split("%")[0])
        except ValueError:
            if text != "localhost":
                raise socket.gaierror(socket.EAI_NONAME, "name resolution is off in this test") from None
        return real(host, *args, **kwargs)

    return getaddrinfo


class _ServerErrors(logging.Handler):
    """Keeps the tracebacks the live server logs for its 500s."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.tracebacks: list[str] = []
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record):
        self.tracebacks.append(f"server: {self.format(record)}\n")


@pytest.fixture
def fuzz_world(transactional_db, monkeypatch):
    """Some of everything, only loopback in the scan scope, and no name resolution."""
    ScopeRule.objects.filter(action="allow").exclude(network="127.0.0.0/8").delete()
    observe({"127.66.0.1": [22, 80], "127.66.0.2": [6379]})
    zone = Zone.default()
    target = ScanTarget.objects.create(
        name="lab", zone=zone, targets="127.66.0.0/30", profile=ScanProfile.objects.get(slug="quick")
    )
    ScanRun.objects.create(target=target, zone=zone, trigger="manual", targets="127.66.0.0/30")
    ScanProfile.objects.create(slug="custom", name="Custom")
    PortRule.objects.create(scope="global", port_start=22, port_end=22, decision="approved", justification="ssh")
    channel = Channel.objects.create(name="log", kind=ChannelKind.LOG)
    Notification.objects.create(channel=channel, dedupe_key="n", status=NotificationStatus.FAILED)
    Mute.objects.create(ends_at=timezone.now() + timezone.timedelta(hours=1), reason="window")
    segmentation_rule = SegmentationRule.objects.create(
        scope="global", protocol="tcp", port_start=6379, port_end=6379, mode="only", justification="redis"
    )
    segmentation_rule.vantage_points.set([VantagePoint.objects.create(name="office-lan")])
    segmentation.rule_changed(segmentation_rule)
    put_certificate(Service.objects.get(host__address="127.66.0.1", port=80), make_certificate("fuzz.lab"))
    # Runs and notifications are queued on the test's Redis for real; no worker runs here,
    # so nothing is scanned or sent. Names must not reach a DNS server:
    monkeypatch.setattr(socket, "getaddrinfo", _names_only_resolve_to_loopback(socket.getaddrinfo))
    admin = make_user("fuzz-admin-7c1d", Role.ADMIN)
    return Token.objects.create(user=admin).key


@pytest.mark.timeout(600)
def test_a_schema_based_fuzz_run_finds_no_server_error(live_server, fuzz_world, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(FUZZ_CONFIG)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{live_server.url}/api/schema/?format=json",
        "--header",
        f"Authorization: Token {fuzz_world}",
        "--checks",
        "not_a_server_error",
        "--phases",
        FUZZ_PHASES,
        "--max-examples",
        str(FUZZ_EXAMPLES),
        "--seed",
        str(FUZZ_SEED),
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--continue-on-failure",
    ]
    # The run's files (.hypothesis, reports) go to the test's directory, not the checkout.
    # The server's tracebacks go first in a failure's message: a 500 alone says nothing of its cause.
    errors = _ServerErrors()
    logging.getLogger("django.request").addHandler(errors)
    try:
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=540)
    finally:
        logging.getLogger("django.request").removeHandler(errors)
    output = result.stdout + result.stderr
    report = "".join(errors.tracebacks)[-20000:] + output[-20000:]
    assert result.returncode == 0, report
    tested = re.search(r"(\d+) generated, (\d+) passed", output)
    assert tested and tested.group(1) == tested.group(2) and int(tested.group(1)) > 0, report
