"""The Certificates page, the port page's certificate, and /api/certificates/: order, filters, escaping, cost."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from certs.models import Sighting
from inventory.models import Service, Zone
from scans.choices import ChangeKind
from scans.models import Change
from tests.factories import observe
from tests.test_api import api_client
from tests.tls_lab import make_certificate, put_certificate

pytestmark = pytest.mark.django_db

MARKUP = "<script>alert(1)</script>"


@pytest.fixture
def api_viewer(viewer):
    return api_client(viewer)


def port(address, number=443) -> Service:
    return Service.objects.get(host__address=address, port=number)


@pytest.fixture
def certificates():
    observe({f"127.68.0.{n}": [443] for n in range(1, 6)})
    observe({"127.68.1.1": [8443]}, zone=Zone.objects.create(name="dmz"))
    made = {
        "valid": make_certificate("valid.lab", days_left=200, sans=("api.valid.lab",)),
        "expired": make_certificate("expired.lab", days_left=-2),
        "expiring": make_certificate(MARKUP, days_left=9, sans=(f"{MARKUP}.lab",)),
        "self_signed": make_certificate("self.lab", days_left=100, self_signed=True),
        "weak": make_certificate("weak.lab", days_left=300, rsa_bits=1024, sans=("=cmd|' /C calc'!A0",)),
        "dmz": make_certificate("dmz.lab", days_left=50),
    }
    for n, name in enumerate(["valid", "expired", "expiring", "self_signed", "weak"], start=1):
        put_certificate(port(f"127.68.0.{n}"), made[name])
    put_certificate(port("127.68.1.1", 8443), made["dmz"])
    return made


def listed(client, **query) -> list[str]:
    response = client.get(reverse("certificate-list"), query)
    assert response.status_code == 200
    return [sighting.certificate.sha256 for sighting in response.context["page"].object_list]


def test_the_page_lists_current_certificates_expiring_soonest_first(as_viewer, certificates):
    order = ["expired", "expiring", "dmz", "self_signed", "valid", "weak"]
    assert listed(as_viewer) == [certificates[name].sha256 for name in order]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"finding": "expired"}, ["expired"]),
        ({"finding": "expiring"}, ["expiring"]),
        ({"finding": "self_signed"}, ["self_signed"]),
        ({"finding": "weak_key"}, ["weak"]),
        ({"zone": "dmz"}, ["dmz"]),
        ({"q": "API.VALID"}, ["valid"]),
        ({"q": "self.lab"}, ["self_signed"]),
    ],
)
def test_the_filters(as_viewer, certificates, query, expected):
    assert listed(as_viewer, **query) == [certificates[name].sha256 for name in expected]


def test_a_bad_filter_lists_nothing_and_says_why(as_viewer, certificates):
    response = as_viewer.get(reverse("certificate-list"), {"finding": "nonsense", "zone": "nowhere"})
    assert response.status_code == 200 and list(response.context["page"].object_list) == []
    assert "Select a valid choice" in response.content.decode()


def test_a_port_that_changed_its_certificate_lists_only_the_current_one(as_viewer, certificates):
    sighting = Sighting.objects.get(certificate__sha256=certificates["valid"].sha256)
    Sighting.objects.filter(pk=sighting.pk).update(current=False)
    put_certificate(sighting.service, make_certificate("renewed.lab", days_left=365))

    assert certificates["valid"].sha256 not in listed(as_viewer)


def test_text_from_hosts_is_escaped_on_the_list_and_the_port_page(as_viewer, certificates):
    pages = [reverse("certificate-list"), port("127.68.0.3").get_absolute_url()]
    for url in pages:
        page = as_viewer.get(url).content.decode()
        assert MARKUP not in page, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url


def test_the_export_neutralises_formulas(as_viewer, certificates):
    response = as_viewer.get(reverse("certificate-list"), {"format": "csv", "finding": "weak_key"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["subject"], row["sans"]) for row in rows] == [("CN=weak.lab", "'=cmd|' /C calc'!A0")]
    assert rows[0]["findings"] == "weak_key"


def test_the_page_makes_the_same_number_of_queries_for_6_or_60_rows_and_pages_by_cursor(as_viewer, certificates):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert as_viewer.get(reverse("certificate-list")).status_code == 200
        return len(captured)

    few = queries()
    observe({f"127.68.2.{n}": [443] for n in range(1, 55)})
    for n in range(1, 55):
        put_certificate(port(f"127.68.2.{n}"), make_certificate(f"bulk{n}.lab", days_left=400 + n))
    assert queries() == few
    first = as_viewer.get(reverse("certificate-list")).context["page"]
    assert len(first.object_list) == 50 and first.has_next
    second = as_viewer.get(reverse("certificate-list"), {"cursor": first.next_cursor}).context["page"]
    assert len(second.object_list) == 10 and not second.has_next


def test_the_port_page_shows_the_certificate_and_its_history(as_viewer, certificates):
    service = port("127.68.0.1")
    Sighting.objects.filter(service=service).update(current=False)
    put_certificate(service, make_certificate("renewed.lab", days_left=365, sans=("renewed.lab",)))

    page = as_viewer.get(service.get_absolute_url()).content.decode()

    assert "CN=renewed.lab" in page and "Certificates this port served" in page and "CN=valid.lab" in page
    assert certificates["valid"].sha256[:17] in page  # truncated in the history table


def test_a_certificate_change_reads_in_the_changes_list(as_viewer, certificates):
    service = port("127.68.0.3")
    Change.objects.create(
        host=service.host,
        protocol="tcp",
        port=443,
        kind=ChangeKind.CERTIFICATE_CHANGED,
        before={"fingerprint": "ab" * 32, "subject": f"CN={MARKUP}", "not_after": "2027-01-01T00:00:00+00:00"},
        after={"fingerprint": "cd" * 32, "subject": "CN=new.lab", "not_after": "2028-01-01T00:00:00+00:00"},
    )

    page = as_viewer.get(reverse("change-list")).content.decode()

    assert "certificate changed" in page and "until 2028-01-01" in page and MARKUP not in page


# --- the API -------------------------------------------------------------------------


def test_the_api_lists_with_the_page_filters_and_cursor_pages(api_viewer, certificates):
    response = api_viewer.get(reverse("api:certificate-list"), {"page_size": 2})
    assert response.status_code == 200
    body = response.json()
    assert [item["certificate"]["sha256"] for item in body["results"]] == [
        certificates["expired"].sha256,
        certificates["expiring"].sha256,
    ]
    assert body["results"][0]["findings"] == ["expired"]
    # JSON carries the text as it is (the subject as RFC 4514 writes it).
    assert body["results"][1]["certificate"]["subject"] == r"CN=\<script\>alert(1)\</script\>"
    assert body["results"][1]["certificate"]["sans"] == [f"{MARKUP}.lab"]
    rest = api_viewer.get(body["next"]).json()
    assert [item["certificate"]["sha256"] for item in rest["results"]] == [
        certificates["dmz"].sha256,
        certificates["self_signed"].sha256,
    ]
    weak = api_viewer.get(reverse("api:certificate-list"), {"finding": "weak_key"}).json()["results"]
    assert [(item["host"]["address"], item["port"], item["certificate"]["key_bits"]) for item in weak] == [
        ("127.68.0.5", 443, 1024)
    ]
    detail = api_viewer.get(reverse("api:certificate-detail", args=[weak[0]["id"]])).json()
    assert detail["certificate"]["weak_key"] is True


def test_the_api_refuses_a_bad_filter(api_viewer, certificates):
    response = api_viewer.get(reverse("api:certificate-list"), {"finding": "nonsense", "port": "70000"})
    assert response.status_code == 400
    assert set(response.json()) == {"finding", "port"}


def test_the_list_names_each_port_s_host(as_viewer, certificates):
    """The name people gave the host, else the name the network gave it (escaped either way)."""
    from inventory.models import Host

    Host.objects.filter(address="127.68.0.1").update(name="web-<1>")
    Host.objects.filter(address="127.68.0.2").update(hostnames=["expired-host.lab"])
    page = as_viewer.get(reverse("certificate-list")).content.decode()
    assert "<strong>web-&lt;1&gt;</strong>" in page
    assert "<strong>expired-host.lab</strong>" in page
