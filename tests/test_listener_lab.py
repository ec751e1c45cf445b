"""The host's own view on real sockets: the real ss in the hosts' namespace, the real nmap from the scanner's.

Inside the namespace lab (tests/netns.py; 198.18.0.0/24 exists only there):
listeners bound to every interface, to the host's address and to
127.0.0.1; nftables drops some for the scanner, and a NAT rule answers one
port from another. The report is what ``ss -Htulnp`` prints in the hosts'
namespace, posted through the API as a host's cron job would; the network
view is a real scan. Every finding is checked, then a listener is stopped
and rebound and the next report records it.
"""

import time
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.test import APIClient

from inventory.models import Host
from listeners import reconcile
from listeners.choices import Finding
from scans.choices import RunStatus
from scans.models import Change
from tests.test_netns_lab import lab_target  # noqa: F401 - the fixture
from tests.test_scan_lab import scan

pytestmark = [pytest.mark.django_db, pytest.mark.netns]


def post(client, address, text):
    return client.post(f"/api/host-reports/?host={address}", data=text.encode(), content_type="text/plain")


def test_real_ss_and_real_scans_give_every_finding(netns_lab, lab_target):  # noqa: F811
    h2 = netns_lab.addresses[0]
    netns_lab.listen("0.0.0.0", 41010, 41011, 41016, 45000)  # every interface (45000: outside the probed ports)
    netns_lab.listen(h2, 41012, 41013)  # the host's own address
    netns_lab.listen("127.0.0.1", 41014)  # loopback only
    netns_lab.filter_port(h2, 41011)
    netns_lab.filter_port(h2, 41013)
    netns_lab.redirect(h2, 41015, 41016)  # 41015 answers from 41016: nothing listens on 41015
    run = scan(lab_target)
    assert run.status == RunStatus.SUCCEEDED, run.error

    out = StringIO()
    call_command("listener_reporter", "cron-dc1", stdout=out)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {out.getvalue().strip()}")
    report = netns_lab.ss()
    assert "41014" in report and "users:((" in report  # the real ss, run as root: processes shown
    response = post(client, h2, report)
    assert response.status_code == 201, response.content
    assert response.json()["format"] == "ss" and response.json()["applied"]
    # The reporter's token posts reports and nothing else.
    assert client.get("/api/hosts/").status_code == 403
    assert client.get("/api/host-reports/").status_code == 403

    host = Host.objects.get(address=h2)
    found = {port.port: port for port in reconcile.for_host(host).ports}
    assert {port: found[port].finding for port in (41010, 41011, 41012, 41013, 41014, 41015, 45000)} == {
        41010: Finding.EXPOSED,
        41011: Finding.SHIELDED,  # every interface, the firewall drops it for the scanner
        41012: Finding.EXPOSED,
        41013: Finding.SHIELDED,
        41014: Finding.LOCAL,
        41015: Finding.FORWARDED,  # the scan finds it open, the host lists nothing on it
        45000: Finding.UNSCANNED,
    }
    assert found[41012].listeners[0].address == h2 and found[41012].scope == "address"
    assert found[41014].listeners[0].process.startswith("python")
    assert found[41010].open_from == ["default"]

    # A listener stops and another rebinds: the next real report records both, once.
    for process in netns_lab.listeners[1:]:  # the host address's and loopback's
        process.kill()
        process.wait()
    netns_lab.listeners[1:] = []
    netns_lab.listen("0.0.0.0", 41014)  # was loopback only: now on every interface
    time.sleep(0.2)
    assert post(client, h2, netns_lab.ss()).status_code == 201
    changed = sorted(Change.objects.filter(host=host, kind__startswith="listener_rebound").values_list("kind", "port"))
    assert changed == [("listener_rebound", 41014)]
    removed = set(Change.objects.filter(host=host, kind="listener_removed").values_list("port", flat=True))
    assert removed == {41012, 41013}
    assert post(client, h2, netns_lab.ss()).json()["summary"] == "no change"
    assert User.objects.get(username="cron-dc1").groups.get().name == "host-reporter"
