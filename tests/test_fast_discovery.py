"""Fast discovery: masscan sweeps, nmap confirms only what it found, in one run.

The lab tests run the real masscan and the real nmap inside the test's own
network namespaces (tests/netns.py), through PortWatch's own chunk path.
"""

import subprocess
from unittest import mock

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from inventory.choices import HostStatus, PortState
from inventory.models import Host, Service, Zone
from scans import chunks, services
from scans.choices import AttemptOutcome, ChangeKind, ChunkStatus, ChunkStep, ProfileKind, RunStatus
from scans.models import Change, ScanChunk, ScanProfile, ScanRun, ScanTarget, ScopeRule
from tests.netns import LAB_NETWORK, masscan_unavailable_reason

pytestmark = pytest.mark.django_db


def fast_profile(**fields) -> ScanProfile:
    defaults = {"name": "Fast lab", "kind": ProfileKind.FAST_DISCOVERY, "port_scope": "all", "masscan_rate": 20_000}
    return ScanProfile.objects.create(slug=fields.pop("slug", "fast-lab"), **{**defaults, **fields})


def run_all(run: ScanRun) -> ScanRun:
    """Run every chunk of the run in this process, as a worker would, confirm chunks as the sweep queues them."""
    done = set()
    while True:
        pending = [chunk for chunk in run.chunks.order_by("index") if chunk.pk not in done]
        if not pending:
            break
        for chunk in pending:
            with mock.patch("scans.queueing.send_on_commit"):
                assert chunks.run_chunk(chunk.pk) is chunks.ChunkOutcome.DONE
            done.add(chunk.pk)
    run.refresh_from_db()
    return run


def start(target, **kwargs) -> ScanRun:
    with mock.patch("scans.queueing.send_on_commit"):
        return services.start_run(target, **kwargs)


def changes(run) -> set:
    return set(Change.objects.filter(run=run).values_list("kind", "host__address", "port"))


@pytest.fixture
def lab(netns_lab, settings):
    reason = masscan_unavailable_reason()
    if reason:
        pytest.skip(reason)
    settings.NMAP_PATH = str(netns_lab.nmap)
    settings.MASSCAN_PATH = str(netns_lab.masscan_path())
    settings.MASSCAN_WAIT_SECONDS = 1
    settings.MASSCAN_MAX_RATE = 50_000
    ScopeRule.objects.create(network=LAB_NETWORK, action="allow", reason="namespace lab")
    return netns_lab


def lab_target(lab, profile, ports="41000-41100") -> ScanTarget:
    return ScanTarget.objects.create(
        name="fast lab", zone=Zone.default(), targets=LAB_NETWORK, ports=ports, profile=profile
    )


@pytest.mark.netns
def test_masscan_finds_nmap_confirms_and_silence_concludes_nothing(lab):
    h2, h3, h4 = lab.addresses
    lab.listen(h2, 41022, 41080)
    lab.listen(h3, 41022)
    lab.listen(h4, 41443)
    first = run_all(start(lab_target(lab, ScanProfile.objects.get(slug="quick"))))  # nmap alone, as before
    assert first.status == RunStatus.SUCCEEDED, first.error
    target = ScanTarget.objects.get()
    target.profile = fast_profile()
    target.save()

    # Now: h2 opens 41090; 41080 is dropped (masscan hears nothing there); h4 is silent altogether.
    lab.listen(h2, 41090)
    lab.filter_port(h2, 41080)
    lab.drop_host(h4)
    run = run_all(start(target))

    assert run.status == RunStatus.SUCCEEDED, run.error
    sweep, *confirms = run.chunks.order_by("index")
    assert sweep.step == ChunkStep.SWEEP and {chunk.step for chunk in confirms} == {ChunkStep.CONFIRM}
    assert sweep.found["answered"] == 2  # h2 and h3: h4 dropped everything
    assert (sweep.found["hosts"], sweep.found["ports"]) == (2, 3)
    assert sweep.coverage == {}  # masscan's sweep concludes nothing: it has no nmap coverage
    # nmap probed only what masscan found on each host (and the chunk's union of them).
    probed = {address: chunk.coverage["tcp"] for chunk in confirms for address in chunk.targets}
    assert probed[h2].split(",")[:2] == ["41022", "41090"] and h4 not in probed
    assert changes(run) == {(ChangeKind.PORT_OPENED, h2, 41090)}
    assert Service.objects.get(host__address=h2, port=41080).state == PortState.OPEN  # silence: nothing closed
    assert Host.objects.get(address=h4).status == HostStatus.UP  # not heard: not marked down
    assert not Service.objects.filter(stale=True).exists()
    assert run.hosts_done == run.hosts_total == 256 + 2


@pytest.mark.netns
def test_a_sweep_that_finds_nothing_closes_nothing(lab):
    h2, _, _ = lab.addresses
    lab.listen(h2, 41022)
    run_all(start(lab_target(lab, ScanProfile.objects.get(slug="quick"))))
    target = ScanTarget.objects.get()
    target.profile = fast_profile()
    target.ports = "42000-42100"  # nothing listens there
    target.save()

    run = run_all(start(target))

    assert run.status == RunStatus.SUCCEEDED, run.error
    (sweep,) = run.chunks.all()
    assert (sweep.found["answered"], sweep.found["hosts"], sweep.found["ports"]) == (3, 0, 0)
    assert not Change.objects.filter(run=run).exists()
    assert Service.objects.get(host__address=h2, port=41022).state == PortState.OPEN


@pytest.mark.netns
def test_without_host_discovery_every_address_is_swept(lab):
    h2, h3, _ = lab.addresses
    lab.listen(h2, 41022)
    lab.count_packets_to(h3)  # before the drop rule, which ends the chain
    lab.drop_host(h3)  # no answer to a ping, yet its ports are probed
    target = lab_target(lab, fast_profile(discover_hosts=False))
    target.targets = "\n".join(lab.addresses)
    target.save()

    run = run_all(start(target))

    assert run.status == RunStatus.SUCCEEDED, run.error
    sweep = run.chunks.get(step=ChunkStep.SWEEP)
    assert sweep.found["answered"] is None and sweep.found["addresses"] == 3
    assert lab.packets_to(h3) >= 101  # every port of the target, on an address that answers nothing
    assert changes(run) == {(ChangeKind.HOST_DISCOVERED, h2, None), (ChangeKind.PORT_OPENED, h2, 41022)}


@pytest.mark.netns
def test_masscan_never_probes_an_address_the_scope_excludes(lab):
    h2, h3, _ = lab.addresses
    lab.listen(h2, 41022)
    lab.listen(h3, 41022)
    target = lab_target(lab, fast_profile(discover_hosts=False))
    run = start(target)
    # Excluded after the run was planned: the sweep checks the scope again and tells masscan too.
    ScopeRule.objects.create(network=f"{h3}/32", action="exclude", reason="not ours")
    lab.count_packets_to(h3)

    run = run_all(run)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert lab.packets_to(h3) == 0
    assert {address for kind, address, port in changes(run)} == {h2}


@pytest.mark.netns
def test_cancel_stops_masscan_and_queues_no_confirm_step(lab, monkeypatch):
    h2, _, _ = lab.addresses
    lab.listen(h2, 41022)
    # 65,535 ports of 256 addresses at 100 packets/s: hours, unless it is stopped.
    target = lab_target(lab, fast_profile(masscan_rate=100, discover_hosts=False), ports="")
    run = start(target)
    real_stop_check = chunks._stop_check

    def cancel_once_masscan_runs(chunk):
        real = real_stop_check(chunk)

        def should_stop():
            if lab_pids(lab):  # masscan is running in the scanner's namespace: cancel the run now
                services.cancel_run(run)
            return real()

        return should_stop

    monkeypatch.setattr(chunks, "_stop_check", cancel_once_masscan_runs)
    sweep = run.chunks.get()
    assert chunks.run_chunk(sweep.pk) is chunks.ChunkOutcome.DONE

    sweep.refresh_from_db()
    run.refresh_from_db()
    assert sweep.status == ChunkStatus.CANCELLED and "masscan was stopped" in sweep.error
    assert sweep.tries.get().outcome == AttemptOutcome.CANCELLED
    assert run.status == RunStatus.CANCELLED and run.chunks.count() == 1
    assert lab_pids(lab) == []  # masscan is gone


@pytest.mark.netns
def test_the_time_limit_stops_masscan_and_fails_the_sweep_without_concluding(lab, monkeypatch):
    target = lab_target(lab, fast_profile(masscan_rate=100, discover_hosts=False), ports="")
    run = start(target)
    real_stop_check = chunks._stop_check

    def time_limit_once_masscan_runs(chunk):
        real = real_stop_check(chunk)

        def should_stop():
            if lab_pids(lab):  # as Celery's soft time limit does, inside the wait
                raise SoftTimeLimitExceeded()
            return real()

        return should_stop

    monkeypatch.setattr(chunks, "_stop_check", time_limit_once_masscan_runs)
    sweep = run.chunks.get()
    assert chunks.run_chunk(sweep.pk) is chunks.ChunkOutcome.DONE

    sweep.refresh_from_db()
    run.refresh_from_db()
    assert sweep.status == ChunkStatus.FAILED and "time limit" in sweep.error
    assert run.status == RunStatus.FAILED and run.chunks.count() == 1 and not run.changes.exists()
    assert lab_pids(lab) == []  # masscan is gone


def lab_pids(lab) -> list[str]:
    return subprocess.run(["ip", "netns", "pids", lab.scan_ns], capture_output=True, text=True).stdout.split()


@pytest.mark.netns
def test_a_sweep_whose_worker_died_is_taken_over_and_recorded_once(lab):
    h2, h3, _ = lab.addresses
    lab.listen(h2, 41022, 41080)
    lab.listen(h3, 41022)
    run = start(lab_target(lab, fast_profile()))
    sweep = run.chunks.get()
    # A worker on another machine claimed it and stopped answering before the sweep was recorded.
    chunks.claim(sweep.pk, "dead-worker@elsewhere")
    ScanChunk.objects.filter(pk=sweep.pk).update(heartbeat_at=None)

    assert chunks.run_chunk(sweep.pk) is chunks.ChunkOutcome.DONE
    assert chunks.run_chunk(sweep.pk) is chunks.ChunkOutcome.DONE  # delivered again: done already

    sweep.refresh_from_db()
    assert [attempt.outcome for attempt in sweep.tries.all()] == [AttemptOutcome.LOST, AttemptOutcome.SUCCEEDED]
    confirms = run.chunks.filter(step=ChunkStep.CONFIRM)
    assert sorted(address for chunk in confirms for address in chunk.targets) == [h2, h3]
    run = run_all(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert changes(run) == {
        (ChangeKind.HOST_DISCOVERED, h2, None),
        (ChangeKind.HOST_DISCOVERED, h3, None),
        (ChangeKind.PORT_OPENED, h2, 41022),
        (ChangeKind.PORT_OPENED, h2, 41080),
        (ChangeKind.PORT_OPENED, h3, 41022),
    }
