"""Truthful changes through the real scanner in a network-namespace lab:
a filtered port reads as filtered, a silent host as unreachable, never as
"all its ports closed"."""

import pytest

from alerts.choices import ChannelKind
from alerts.models import AlertRule, Channel, Notification
from inventory.choices import HostStatus, PortState
from inventory.models import Host, Service, Zone
from scans.choices import ChangeKind, RunStatus
from scans.models import Change, ScanProfile, ScanTarget, ScopeRule
from tests.netns import LAB_NETWORK
from tests.test_scan_lab import scan

pytestmark = [pytest.mark.django_db, pytest.mark.netns]


@pytest.fixture
def lab_target(netns_lab, settings):
    settings.NMAP_PATH = str(netns_lab.nmap)
    ScopeRule.objects.create(network=LAB_NETWORK, action="allow", reason="namespace lab")
    return ScanTarget.objects.create(
        name="netns lab",
        zone=Zone.default(),
        targets="\n".join(netns_lab.addresses),
        ports="41000-41100",
        profile=ScanProfile.objects.get(slug="quick"),
    )


def kinds(run):
    return sorted(Change.objects.filter(run=run).values_list("kind", "host__address", "port"))


def test_filtered_port_and_silent_host_are_not_read_as_closed(netns_lab, lab_target):
    h2, h3, h4 = netns_lab.addresses
    netns_lab.listen(h2, 41022, 41080)
    netns_lab.listen(h3, 41022)

    first = scan(lab_target)
    assert first.status == RunStatus.SUCCEEDED, first.error
    assert set(Change.objects.filter(run=first, kind=ChangeKind.PORT_OPENED).values_list("host__address", "port")) == {
        (h2, 41022),
        (h2, 41080),
        (h3, 41022),
    }
    # h4 has no listener but answers ARP: up, no open port.
    assert Host.objects.get(address=h4).status == HostStatus.UP

    netns_lab.filter_port(h2, 41022)
    netns_lab.drop_host(h3)
    second = scan(lab_target)

    assert second.status == RunStatus.SUCCEEDED, second.error
    assert kinds(second) == [
        (ChangeKind.HOST_UNREACHABLE, h3, None),
        (ChangeKind.PORT_FILTERED, h2, 41022),
    ]
    assert not Change.objects.filter(kind=ChangeKind.PORT_CLOSED).exists()
    assert Service.objects.get(host__address=h2, port=41022).state == PortState.FILTERED
    assert Service.objects.get(host__address=h2, port=41080).state == PortState.OPEN
    silent = Service.objects.get(host__address=h3, port=41022)
    assert (silent.state, silent.stale) == (PortState.OPEN, True)
    assert Host.objects.get(address=h3).status == HostStatus.UNREACHABLE


def test_a_host_that_answers_again_returns(netns_lab, lab_target):
    h2 = netns_lab.addresses[0]
    netns_lab.listen(h2, 41022)
    scan(lab_target)
    netns_lab.drop_host(h2)
    scan(lab_target)
    assert Host.objects.get(address=h2).status == HostStatus.UNREACHABLE

    netns_lab._nft("flush table inet pwlab", "flush table arp pwarp")
    back = scan(lab_target)

    assert kinds(back) == [(ChangeKind.HOST_RETURNED, h2, None)]
    service = Service.objects.get(host__address=h2, port=41022)
    assert (service.state, service.stale) == (PortState.OPEN, False)


def test_a_lossy_link_never_alerts_about_a_port_that_was_open_all_along(netns_lab, lab_target):
    """Half of the packets to one open port are dropped at random: ten scans raise no alert.

    A scan may see the port filtered (every probe lost); the re-probe must see
    that too before it is recorded, and the port coming back is "returned",
    not "opened": it was open all along.
    """
    h2 = netns_lab.addresses[0]
    netns_lab.listen(h2, 41022, 41080)
    channel = Channel.objects.create(name="soc log", kind=ChannelKind.LOG)
    channel.rules.set(AlertRule.objects.filter(built_in=True))
    first = scan(lab_target)
    assert (ChangeKind.PORT_OPENED, h2, 41022) in kinds(first)
    alerted_before = Notification.objects.count()
    netns_lab.lossy_port(h2, 41022)

    seen = []
    for _ in range(10):
        run = scan(lab_target)
        assert run.status == RunStatus.SUCCEEDED, run.error
        seen.extend(kinds(run))

    assert Notification.objects.count() == alerted_before, seen
    assert not [change for change in seen if change[0] in (ChangeKind.PORT_OPENED, ChangeKind.PORT_CLOSED)], seen
    assert {kind for kind, _, _ in seen} <= {ChangeKind.PORT_FILTERED, ChangeKind.PORT_RETURNED}, seen
