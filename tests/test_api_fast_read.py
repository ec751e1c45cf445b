"""The API's list serializers give what DRF would give without portwatch.api.fast_read.

Each serializer that mixes ``FastRead`` in is run both ways on the same rows
(relations present and missing, text from scanned hosts, several time zones,
a segmentation change without a run, a host without a zone name's tag...),
and the two outputs must be equal.
"""

import json
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient, APIRequestFactory

from inventory.api import HostRefSerializer, HostSerializer, ServiceSerializer
from inventory.models import Host, HostTag, PortRule, Service, Tag, Zone
from portwatch.api.fast_read import FastRead
from reach.models import VantagePoint
from scans.api import ChangeSerializer
from scans.models import Change
from tests.factories import observe

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

FAST_SERIALIZERS = [HostRefSerializer, HostSerializer, ServiceSerializer, ChangeSerializer]


def drf(serializer, instance) -> dict:
    """DRF's own Serializer.to_representation (FastRead stepped over), nested serializers included."""
    return serializers.Serializer.to_representation(serializer, instance)


@pytest.fixture
def inventory():
    zone = Zone.objects.create(name="dc-fast")
    observe(
        {
            "127.70.0.1": [(22, "ssh", "OpenSSH"), (8080, "<script>alert(1)</script>", '"><img src=x>')],
            "127.70.0.2": [443],
        },
        zone=zone,
        hostnames={"127.70.0.1": ["<b>bold</b>.example"]},
    )
    tag = Tag.objects.create(name="edge")
    HostTag.objects.create(host=Host.objects.get(address="127.70.0.1"), tag=tag)
    rule = PortRule(scope="zone", zone=zone, protocol="tcp", port_start=22, port_end=22, decision="approved")
    rule.justification = "<i>because</i>"
    rule.save()
    Service.objects.filter(port=22).update(policy_rule=rule, policy_status="approved")
    host = Host.objects.get(address="127.70.0.2")
    Host.objects.filter(pk=host.pk).update(last_change_at=None, name="web<1>")
    vantage = VantagePoint.objects.create(name="office-fast")
    # A change that follows from a rule: no run; one seen from elsewhere; one with odd JSON.
    Change.objects.create(host=host, kind="segmentation_violated", protocol="tcp", port=443, after={"mode": "deny"})
    Change.objects.create(
        host=host, kind="port_opened", protocol="tcp", port=443, vantage=vantage, before=None, after={"x": [1, None]}
    )
    return zone


def rows():
    return {
        HostRefSerializer: list(Host.objects.select_related("zone")),
        HostSerializer: list(Host.objects.select_related("zone", "seen_ports").prefetch_related("tags")),
        ServiceSerializer: list(Service.objects.select_related("host__zone", "host__seen_ports", "policy_rule")),
        ChangeSerializer: list(Change.objects.select_related("host__zone", "run", "vantage")),
    }


@pytest.mark.parametrize("zone_name", ["UTC", "Europe/Paris", "Pacific/Chatham", "America/St_Johns"])
def test_fast_read_gives_what_drf_gives(inventory, zone_name):
    request = APIRequestFactory().get("/api/")
    with timezone.override(zoneinfo.ZoneInfo(zone_name)):
        for serializer_class, instances in rows().items():
            assert issubclass(serializer_class, FastRead)
            assert instances, serializer_class
            serializer = serializer_class(context={"request": request})
            for instance in instances:
                assert serializer.to_representation(instance) == drf(serializer, instance), serializer_class


def test_date_times_far_and_naive_still_go_drf_s_way(inventory):
    service = Service.objects.select_related("host__zone", "host__seen_ports", "policy_rule").first()
    serializer = ServiceSerializer(context={"request": APIRequestFactory().get("/api/")})
    for value in (
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, tzinfo=UTC),
        datetime(2026, 1, 1, 12, 0, tzinfo=UTC) + timedelta(microseconds=7),
    ):
        service.first_seen = value
        with timezone.override(zoneinfo.ZoneInfo("Pacific/Kiritimati")):
            try:
                expected = drf(serializer, service)
            except Exception as error:  # an overflow: both must refuse it the same way
                with pytest.raises(type(error)):
                    serializer.to_representation(service)
            else:
                assert serializer.to_representation(service) == expected


def test_the_api_lists_answer_the_same_through_http(viewer, inventory):
    """End to end: what clients read from the lists is what DRF gives (the schema test checks its shape)."""
    client = APIClient()
    client.force_authenticate(viewer)
    for url, serializer_class in (
        ("/api/hosts/", HostSerializer),
        ("/api/services/", ServiceSerializer),
        ("/api/changes/", ChangeSerializer),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        served = {row["id"]: row for row in response.json()["results"]}
        assert served, url
        serializer = serializer_class(context={"request": response.wsgi_request})
        expected = {}
        for instance in rows()[serializer_class]:
            row = json.loads(JSONRenderer().render(drf(serializer, instance)))
            if row["id"] in served:
                expected[row["id"]] = row
        assert served == expected, url
