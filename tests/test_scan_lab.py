"""Real nmap scans of real listeners on loopback, through the scan services."""

import sys
from unittest import mock

import pytest

from inventory.choices import HostStatus, PortState
from inventory.models import Host, Service, Zone
from scans import chunks, services
from scans.choices import ChangeKind, ChunkStatus, RunStatus
from scans.models import Change, ScanProfile, ScanTarget
from tests.lab import LAB_PORT_SPEC

pytestmark = [pytest.mark.django_db, pytest.mark.lab]


def make_target(lab, hosts=range(1, 4), profile="quick", **fields):
    return ScanTarget.objects.create(
        name=fields.pop("name", f"lab {lab.prefix}"),
        zone=Zone.default(),
        targets="\n".join(lab.address(host) for host in hosts),
        ports=LAB_PORT_SPEC,
        profile=ScanProfile.objects.get(slug=profile),
        **fields,
    )


def scan(target, **kwargs):
    """Run every chunk in this process, as a worker would, and return the run."""
    with mock.patch("scans.queueing.send_on_commit"):
        run = services.start_run(target, **kwargs)
    for chunk in run.chunks.all():
        assert chunks.run_chunk(chunk.pk) is chunks.ChunkOutcome.DONE
    run.refresh_from_db()
    return run


def open_ports(lab):
    return set(
        Service.objects.filter(state=PortState.OPEN, host__address__startswith=lab.prefix + ".").values_list(
            "host__address", "port"
        )
    )


def changes(run, kind):
    return set(Change.objects.filter(run=run, kind=kind).values_list("host__address", "port"))


def test_scan_finds_the_hosts_and_ports_that_listen(lab):
    lab.open(1, 41022)
    lab.open(1, 41080)
    lab.open(2, 41443)
    target = make_target(lab)

    run = scan(target)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.hosts_total == 3 and run.hosts_done == 3
    assert open_ports(lab) == lab.expected()
    # Loopback answers for every address, so all three hosts are discovered.
    assert changes(run, ChangeKind.HOST_DISCOVERED) == {(lab.address(h), None) for h in (1, 2, 3)}
    assert changes(run, ChangeKind.PORT_OPENED) == lab.expected()
    assert run.chunks.get().coverage == {"tcp": LAB_PORT_SPEC}


def test_rescanning_reports_opened_and_closed_ports_and_nothing_else(lab):
    lab.open(1, 41022)
    lab.open(2, 41080)
    target = make_target(lab)
    scan(target)

    lab.open(1, 41443)
    lab.close(2, 41080)
    second = scan(target)

    assert second.status == RunStatus.SUCCEEDED, second.error
    assert changes(second, ChangeKind.PORT_OPENED) == {(lab.address(1), 41443)}
    assert changes(second, ChangeKind.PORT_CLOSED) == {(lab.address(2), 41080)}
    assert Change.objects.filter(run=second).count() == 2
    assert open_ports(lab) == lab.expected()
    closed = Service.objects.get(host__address=lab.address(2), port=41080)
    assert closed.state == PortState.CLOSED

    third = scan(target)
    assert Change.objects.filter(run=third).count() == 0


def test_version_detection_identifies_a_banner(lab):
    lab.open(1, 41022, banner=b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    target = make_target(lab, hosts=[1], profile="services")

    scan(target)

    service = Service.objects.get(host__address=lab.address(1), port=41022)
    assert (service.name, service.product, service.identified) == ("ssh", "OpenSSH", True)


def test_scan_now_for_one_host_covers_only_that_host(lab):
    lab.open(1, 41022)
    lab.open(2, 41022)
    target = make_target(lab)
    scan(target)
    lab.close(2, 41022)
    lab.close(1, 41022)

    run = scan(target, only=lab.address(1))

    assert run.hosts_total == 1
    assert changes(run, ChangeKind.PORT_CLOSED) == {(lab.address(1), 41022)}
    # Host 2 was not covered, so its port is still believed open.
    assert Service.objects.get(host__address=lab.address(2), port=41022).state == PortState.OPEN


def test_a_host_outside_the_target_cannot_be_scanned_through_it(lab):
    target = make_target(lab, hosts=[1])
    with pytest.raises(services.TargetSpecError, match="not part of the target"):
        services.start_run(target, only="127.0.0.1")


def test_nmap_failing_fails_the_run_and_closes_nothing(lab, settings, tmp_path):
    lab.open(1, 41022)
    target = make_target(lab, hosts=[1])
    scan(target)
    lab.close(1, 41022)
    broken = tmp_path / "nmap"
    broken.write_text("#!/bin/sh\necho 'nmap: Failed to open device eth7' >&2\nexit 1\n")
    broken.chmod(0o755)
    settings.NMAP_PATH = str(broken)

    run = scan(target)

    assert run.status == RunStatus.FAILED
    assert "Failed to open device eth7" in run.error
    assert run.chunks.get().status == ChunkStatus.FAILED
    assert not Change.objects.filter(run=run).exists()
    assert Service.objects.get(port=41022, host__address=lab.address(1)).state == PortState.OPEN


def test_missing_nmap_fails_the_chunk_with_the_install_command(lab, settings):
    settings.NMAP_PATH = "/nonexistent/nmap"
    run = scan(make_target(lab, hosts=[1]))
    assert run.status == RunStatus.FAILED
    assert "apt-get install nmap" in run.error


def test_unresolvable_hostname_fails_its_chunk_only(lab, settings):
    lab.open(1, 41022)
    settings.SCAN_CHUNK_SIZE = 1
    target = make_target(lab, hosts=[1])
    target.targets += "\nno-such-host.invalid"
    target.save()

    run = scan(target)

    assert run.status == RunStatus.PARTIAL
    assert "no-such-host.invalid did not resolve" in run.error
    assert changes(run, ChangeKind.PORT_OPENED) == {(lab.address(1), 41022)}
    assert Host.objects.get(address=lab.address(1)).status == HostStatus.UP


def test_a_redelivered_chunk_is_not_scanned_or_ingested_again(lab, settings, tmp_path):
    log = tmp_path / "starts.log"
    wrapper = tmp_path / "nmap"
    wrapper.write_text(f'#!/bin/sh\necho x >> {log}\nexec nmap "$@"\n')
    wrapper.chmod(0o755)
    settings.NMAP_PATH = str(wrapper)
    lab.open(1, 41022)
    run = scan(make_target(lab, hosts=[1]))
    starts = log.read_text().count("x")
    changes = Change.objects.count()

    # The broker delivers the same task again (a lost ack).
    chunk = run.chunks.get()
    assert chunks.run_chunk(chunk.pk) is chunks.ChunkOutcome.DONE

    assert log.read_text().count("x") == starts
    assert Change.objects.count() == changes


def test_ingesting_the_same_observations_twice_records_them_once(lab):
    from scans.ingest.diff import Coverage
    from scans.nmap_xml import HostObservation, PortObservation

    lab.open(1, 41022)
    run = scan(make_target(lab, hosts=[1]))
    chunk = run.chunks.get()
    observation = HostObservation(lab.address(1), True, ports=(PortObservation("tcp", 41443, PortState.OPEN),))
    coverage = Coverage(frozenset([lab.address(1)]), {}, complete=True)
    before = Change.objects.count()

    # A second ingest of a chunk that already succeeded is refused by its guard.
    chunks._ingest_chunk(chunk, coverage, [observation], None)

    assert Change.objects.count() == before
    assert not Service.objects.filter(port=41443).exists()


def test_an_address_nmap_lists_twice_is_merged_in_the_chunk(lab, settings, tmp_path):
    """Two target names of one address (www.example.org, example.org): nmap scans and
    lists the address once per name. The real nmap, given every target twice, through
    the run path: the chunk merges, records each change once, and the run succeeds."""
    written = tmp_path / "scan-as-written.xml"
    wrapper = tmp_path / "nmap-twice"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import shutil, subprocess, sys\n"
        "args = sys.argv[1:]\n"
        "targets = args[args.index('-iL') + 1]\n"
        "text = open(targets).read()\n"
        "open(targets, 'w').write(text + text)\n"
        f"status = subprocess.call([{settings.NMAP_PATH!r}, *args])\n"
        f"shutil.copy(args[args.index('-oX') + 1], {str(written)!r})\n"
        "sys.exit(status)\n"
    )
    wrapper.chmod(0o755)
    settings.NMAP_PATH = str(wrapper)
    lab.open(1, 41022)
    lab.open(2, 41080)

    run = scan(make_target(lab, hosts=[1, 2]))

    assert run.status == RunStatus.SUCCEEDED, run.error
    text = written.read_text()
    assert text.count(f'<address addr="{lab.address(1)}"') == 2  # nmap wrote it twice
    assert run.hosts_up == 2 and Host.objects.filter(address__startswith=lab.prefix + ".").count() == 2
    assert changes(run, ChangeKind.PORT_OPENED) == {(lab.address(1), 41022), (lab.address(2), 41080)}
    assert Change.objects.filter(run=run, kind=ChangeKind.PORT_OPENED).count() == 2
