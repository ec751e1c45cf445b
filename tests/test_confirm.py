"""Confirmation re-probe: a would-alert change is recorded only if seen twice."""

import threading

import pytest

from inventory.choices import PortState
from inventory.models import Service
from scans import chunks, queueing, services
from scans.choices import ChangeKind
from scans.models import Change
from tests.conftest import wait_for
from tests.test_scan_lab import make_target, scan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.lab]


@pytest.fixture
def paused_nmap(tmp_path, settings):
    """An nmap that, after its first run, waits for the test to say "go"."""
    wrapper = tmp_path / "nmap"
    wrapper.write_text(
        "#!/bin/sh\n"
        'nmap "$@"; rc=$?\n'
        f"if [ ! -f {tmp_path}/first-done ]; then\n"
        f"  touch {tmp_path}/first-done\n"
        f"  while [ ! -f {tmp_path}/go ]; do sleep 0.05; done\n"
        "fi\n"
        "exit $rc\n"
    )
    wrapper.chmod(0o755)
    settings.NMAP_PATH = str(wrapper)
    return tmp_path


def scan_with_pause(target):
    """Start a scan's chunk in a thread; the wrapper pauses it after the first nmap run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(queueing, "send_on_commit", lambda zone, ids: None)
        run = services.start_run(target)
    chunk = run.chunks.get()
    thread = threading.Thread(target=chunks.run_chunk, args=(chunk.pk,))
    thread.start()
    return run, chunk, thread


def test_a_port_that_closes_before_the_reprobe_is_not_reported_opened(lab, paused_nmap, settings):
    lab.open(1, 41080)
    target = make_target(lab, hosts=[1])
    settings.NMAP_PATH = "nmap"
    scan(target)  # baseline: 41080 open
    settings.NMAP_PATH = str(paused_nmap / "nmap")
    lab.open(1, 41022)

    run, chunk, thread = scan_with_pause(target)
    wait_for((paused_nmap / "first-done").exists, 30, message="the first nmap run")
    lab.close(1, 41022)  # gone before the second look
    (paused_nmap / "go").touch()
    thread.join(timeout=60)

    chunk.refresh_from_db()
    assert chunk.confirmation == {"candidates": 1, "confirmed": 0, "refuted": 1}
    assert not Change.objects.filter(run=run, kind=ChangeKind.PORT_OPENED).exists()
    assert not Service.objects.filter(port=41022).exists()


def test_a_port_seen_twice_is_reported(lab, paused_nmap, settings):
    lab.open(1, 41080)
    target = make_target(lab, hosts=[1])
    settings.NMAP_PATH = "nmap"
    scan(target)  # baseline: the host is known
    settings.NMAP_PATH = str(paused_nmap / "nmap")
    lab.open(1, 41022)

    run, chunk, thread = scan_with_pause(target)
    wait_for((paused_nmap / "first-done").exists, 30, message="the first nmap run")
    (paused_nmap / "go").touch()
    thread.join(timeout=60)

    chunk.refresh_from_db()
    assert chunk.confirmation == {"candidates": 1, "confirmed": 1, "refuted": 0}
    assert Change.objects.get(run=run, kind=ChangeKind.PORT_OPENED).port == 41022
    assert Service.objects.get(port=41022).state == PortState.OPEN


def test_the_reprobe_can_be_turned_off(lab, settings):
    settings.SCAN_CONFIRM_CHANGES = False
    lab.open(1, 41022)
    run = scan(make_target(lab, hosts=[1]))
    assert run.chunks.get().confirmation == {}
    assert Change.objects.filter(run=run, kind=ChangeKind.PORT_OPENED).count() == 1


def test_new_hosts_are_recorded_without_a_reprobe(lab):
    lab.open(1, 41022)
    run = scan(make_target(lab, hosts=[1]))
    assert run.chunks.get().confirmation == {"candidates": 0, "confirmed": 0, "refuted": 0}
    assert Change.objects.filter(run=run, kind=ChangeKind.PORT_OPENED).count() == 1


def test_reprobe_runs_stay_close_to_the_candidates():
    from scans.confirm import plan_runs

    # Hosts sharing ports share a run.
    keys = [(f"198.18.0.{h}", "tcp", p) for h in range(1, 51) for p in (22, 443)]
    assert [(len(hosts), str(ports)) for hosts, ports in plan_runs(keys)] == [(50, "22,443")]
    # Scattered ports: runs are split before the cross product explodes.
    scattered = [(f"198.18.{h // 250}.{h % 250}", "tcp", 1000 + h * 7 + i) for h in range(400) for i in range(8)]
    runs = plan_runs(scattered)
    probes = sum(len(hosts) * len(ports) for hosts, ports in runs)
    assert probes <= 4 * len(scattered) + 4096 * len(runs)
    assert sorted(h for hosts, _ in runs for h in hosts) == sorted({k[0] for k in scattered})
