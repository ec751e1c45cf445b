"""`manage.py demo`: set up once, a fleet on loopback that answers like servers, and
scripted changes that real scans record and alert on.

Everything binds and scans 127.77.N.x addresses of the lab (tests/lab.py), never
the demo's default range, so a demo running on the same machine is left alone.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from alerts import delivery
from alerts.choices import ChannelKind, NotificationStatus
from alerts.models import AlertRule, Channel, Notification
from certs.models import Sighting
from inventory.choices import Decision, PolicyStatus
from inventory.models import AuditEntry, Host, PortRule, Service, Zone
from scans import chunks, services
from scans.choices import ChangeKind, RunStatus, ScheduleKind
from scans.demo import DEMO_CHANNEL, DEMO_PORTS, DEMO_PROFILE, DEMO_TARGET, DEMO_ZONE, STEPS, Fleet
from scans.management.commands.demo import Command
from scans.models import Change, ScanProfile, ScanTarget
from tests.lab import next_lab_prefix
from tests.processes import ROOT, process_env, wait_for


@pytest.fixture
def first_address():
    return next_lab_prefix() + ".1"


@pytest.fixture
def fleet(first_address):
    fleet = Fleet(first_address)
    fleet.start()
    yield fleet
    fleet.stop()


def set_up(first_address) -> str:
    out = _Output()
    call_command("demo", "--setup-only", "--first-address", first_address, stdout=out)
    return out.text


class _Output:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def listening(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((address, port)) == 0


def greeting(address: str, port: int, request: bytes = b"") -> bytes:
    with socket.create_connection((address, port), timeout=5) as sock:
        if request:
            sock.sendall(request)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        return data


def found_open(fleet) -> set[tuple[str, int]]:
    """What connecting to every port of every server finds open."""
    return {(address, port) for address in fleet.addresses.values() for port in DEMO_PORTS if listening(address, port)}


# --- set-up ---------------------------------------------------------------------


@pytest.mark.django_db
def test_set_up_creates_the_target_schedule_profile_and_channel_once(first_address, settings):
    first = set_up(first_address)
    audit_entries = AuditEntry.objects.count()
    second = set_up(first_address)

    target = ScanTarget.objects.get(name=DEMO_TARGET)
    prefix = first_address.rsplit(".", 1)[0]
    assert target.targets == f"{prefix}.1-{prefix}.6"
    assert target.ports == "40021-40022,40025,40080,40443,48000,48080"
    assert (target.schedule_kind, target.schedule_interval, target.enabled) == (ScheduleKind.INTERVAL, 1, True)
    assert target.next_run_at is not None, "an interval schedule starts at once"
    assert target.zone == Zone.objects.get(name=DEMO_ZONE)
    assert target.profile == ScanProfile.objects.get(slug=DEMO_PROFILE)
    assert target.profile.version_detection and target.profile.timing == "T4"

    channel = Channel.objects.get(name=DEMO_CHANNEL)
    assert channel.kind == ChannelKind.LOG and channel.enabled
    assert set(channel.rules.all()) == set(AlertRule.objects.filter(built_in=True))
    approved = PortRule.objects.filter(zone=target.zone, decision=Decision.APPROVED)
    assert sorted(approved.values_list("port_start", flat=True)) == [40022, 40080]

    # The second run found everything and changed nothing.
    assert (ScanTarget.objects.count(), Channel.objects.count(), PortRule.objects.count()) == (1, 1, 2)
    assert AuditEntry.objects.count() == audit_entries
    assert "(created)" in first and "(created)" not in second and "(already there)" in second
    for text in (first, second):
        assert str(settings.ALERT_LOG_FILE) in text
        assert "http://" in text and "login" in text


@pytest.mark.django_db
def test_set_up_puts_back_what_was_edited_away(first_address):
    set_up(first_address)
    ScanTarget.objects.filter(name=DEMO_TARGET).update(schedule_kind=ScheduleKind.MANUAL, schedule_interval=None)
    Channel.objects.get(name=DEMO_CHANNEL).rules.clear()

    out = set_up(first_address)

    target = ScanTarget.objects.get(name=DEMO_TARGET)
    assert target.schedule_kind == ScheduleKind.INTERVAL and target.next_run_at is not None
    assert Channel.objects.get(name=DEMO_CHANNEL).rules.count() == AlertRule.objects.filter(built_in=True).count()
    assert "(updated)" in out


@pytest.mark.parametrize("address", ["198.18.0.1", "198.19.255.1", "::1", "127.255.255.252", "not-an-address"])
def test_the_fleet_goes_nowhere_but_loopback(address):
    with pytest.raises(CommandError, match=r"127\.0\.0\.0/8|IPv4 address"):
        call_command("demo", "--setup-only", "--first-address", address)


# --- the fleet ------------------------------------------------------------------


def test_the_fleet_answers_like_its_services_and_each_step_changes_what_is_open(fleet):
    web1, web2, files1, dev1 = (fleet.address(name) for name in ("web-1", "web-2", "files-1", "dev-1"))
    start = found_open(fleet)
    assert start == fleet.open_ports() and len(start) == 13
    assert greeting(web1, 40022).startswith(b"SSH-2.0-OpenSSH_9.2p1")
    assert b"Server: nginx/1.24.0" in greeting(web1, 40080, b"GET / HTTP/1.0\r\n\r\n")

    fleet.next_step()  # dev-1 starts a debug web server
    assert found_open(fleet) == start | {(dev1, 48000)}
    fleet.next_step()  # web-2 stops nginx
    assert not listening(web2, 40080)
    fleet.next_step()  # files-1 goes quiet
    assert not listening(files1, 40021) and not listening(files1, 40022)
    fleet.next_step()  # files-1 comes back
    assert listening(files1, 40021) and listening(files1, 40022)
    fleet.next_step()  # web-1 upgrades OpenSSH
    assert greeting(web1, 40022).startswith(b"SSH-2.0-OpenSSH_9.6p1")
    for _ in STEPS[5:]:
        fleet.next_step()
    # A whole cycle brings the fleet back to where it started.
    assert found_open(fleet) == start == fleet.open_ports()
    assert greeting(web1, 40022).startswith(b"SSH-2.0-OpenSSH_9.2p1")

    fleet.stop()
    assert found_open(fleet) == set()


# --- real scans of the fleet ------------------------------------------------------


def scan(target):
    """Run the target's chunks in this process, as a worker would."""
    run = services.start_run(target)
    for chunk in run.chunks.all():
        assert chunks.run_chunk(chunk.pk) is chunks.ChunkOutcome.DONE
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def changes(run, kind):
    return set(Change.objects.filter(run=run, kind=kind).values_list("host__address", "port"))


@pytest.mark.lab
@pytest.mark.django_db
def test_scans_of_the_fleet_record_the_scripted_changes_and_alert_to_the_log(fleet, first_address, settings, tmp_path):
    settings.ALERT_LOG_FILE = tmp_path / "alerts.log"
    set_up(first_address)
    target = ScanTarget.objects.get(name=DEMO_TARGET)
    web1, web2, files1, dev1 = (fleet.address(name) for name in ("web-1", "web-2", "files-1", "dev-1"))

    first = scan(target)
    assert changes(first, ChangeKind.HOST_DISCOVERED) == {(address, None) for address in fleet.addresses.values()}
    assert changes(first, ChangeKind.PORT_OPENED) == fleet.open_ports()
    ssh = Service.objects.get(host__address=web1, port=40022)
    assert (ssh.name, ssh.product, ssh.policy_status) == ("ssh", "OpenSSH", PolicyStatus.APPROVED)
    # The fleet gives the hosts the scan found their names, as the narration calls them (once, audited).
    assert Command()._name_hosts(dict(fleet.addresses)) == {}
    assert {host.address: host.name for host in Host.objects.all()} == {a: n for n, a in fleet.addresses.items()}
    assert Command()._name_hosts({"web-1": web1}) == {} and AuditEntry.objects.filter(action="host.update").count() == 6
    assert Service.objects.get(host__address=web1, port=40080).product == "nginx"

    for _ in range(3):  # a debug server opens, nginx stops on web-2, files-1 goes quiet
        fleet.next_step()
    second = scan(target)
    assert changes(second, ChangeKind.PORT_OPENED) == {(dev1, 48000)}
    assert changes(second, ChangeKind.PORT_CLOSED) == {(web2, 40080), (files1, 40021), (files1, 40022)}
    # Loopback always answers: a quiet host's ports close, the host stays up.
    assert not changes(second, ChangeKind.HOST_UNREACHABLE)

    for _ in range(2):  # files-1 comes back, web-1 upgrades OpenSSH
        fleet.next_step()
    third = scan(target)
    assert changes(third, ChangeKind.PORT_OPENED) == {(files1, 40021), (files1, 40022)}
    assert changes(third, ChangeKind.SERVICE_CHANGED) == {(web1, 40022)}

    # The HTTPS listeners' certificates, read by the demo profile's ssl-cert: web-1's expires within the
    # warning, web-2's is self-signed; web-1 renews it, and the next scan says so.
    certificates = {
        sighting.service.host.address: sighting.certificate
        for sighting in Sighting.objects.filter(current=True, service__port=40443).select_related(
            "certificate", "service__host"
        )
    }
    assert set(certificates) == {web1, web2}
    assert certificates[web1].subject == "CN=web-1.demo.internal" and not certificates[web1].self_signed
    assert 10 <= (certificates[web1].not_after - timezone.now()).days <= 12
    assert certificates[web2].self_signed
    fleet.next_step()  # web-2 starts nginx again
    assert fleet.next_step().text.startswith("web-1 renews its TLS certificate")
    fourth = scan(target)
    assert changes(fourth, ChangeKind.CERTIFICATE_CHANGED) == {(web1, 40443)}

    # The built-in rules picked their changes for the demo channel; delivered, they are log lines.
    channel = Channel.objects.get(name=DEMO_CHANNEL)
    for notification in Notification.objects.filter(channel=channel, status=NotificationStatus.PENDING):
        delivery.deliver(notification.pk)
    alerted = {
        (change["kind"], change["host"]["address"], change["port"])
        for line in Path(settings.ALERT_LOG_FILE).read_text().splitlines()
        for change in json.loads(line)["changes"]
    }
    assert ("port_opened", dev1, 48000) in alerted  # unreviewed port opened
    assert ("port_closed", web2, 40080) in alerted  # approved port closed
    assert ("port_closed", files1, 40022) in alerted
    assert ("port_closed", files1, 40021) not in alerted  # unreviewed: no rule asks for it
    assert ("certificate_changed", web1, 40443) in alerted


# --- the command as a process -----------------------------------------------------


@pytest.mark.django_db
def test_the_command_prints_each_change_and_stops_its_listeners_on_sigterm(first_address, tmp_path):
    log_path = tmp_path / "demo.log"

    def output():
        return log_path.read_text(errors="replace")

    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "demo",
                "--no-setup",
                "--first-address",
                first_address,
                "--change-every",
                "0.3",
            ],
            cwd=ROOT,
            env=process_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: "change 2:" in output() or process.poll() is not None, 30, message="two changes")
            assert "dev-1 starts a debug web server" in output() and "web-2 stops nginx" in output()
            assert "next scan: port_opened 48000/tcp" in output()
            assert listening(first_address, 40022)

            os.killpg(process.pid, signal.SIGTERM)
            assert process.wait(timeout=10) == 0, output()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert "demo fleet stopped." in output()
    assert not listening(first_address, 40022)


def test_procfile_demo_runs_everything_procfile_runs_plus_the_fleet():
    processes = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    demo = [line for line in (ROOT / "Procfile.demo").read_text().splitlines() if line and not line.startswith("#")]
    assert demo[: len(processes)] == processes
    assert [line.split(":")[0] for line in demo[len(processes) :]] == ["demo"]
    assert "manage.py demo" in demo[-1]
