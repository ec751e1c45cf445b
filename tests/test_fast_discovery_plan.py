"""Fast discovery without a lab: the options masscan and nmap are given, the sweep's
result recorded once, and what the pages, the API and the forms accept."""

import html
import io
import re
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from inventory.models import AuditEntry, Zone
from reach.models import VantagePoint
from scans import chunks, discovery, queueing, services
from scans.choices import AttemptOutcome, ChunkStatus, ChunkStep, ProfileKind, RunStatus
from scans.masscan_list import MasscanListError, read_list
from scans.models import ScanChunk, ScanProfile, ScanRun, ScanTarget, ScopeRule
from scans.profiles import clamp_rate, confirm_options, masscan_options
from tests.test_api import api_client

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

# Every word PortWatch may put on masscan's command line before its own input and output files.
MASSCAN_WORD = re.compile(r"--ping|--show|closed|-p|--rate|--wait|[0-9]+|[0-9,-]+").fullmatch


def fast(**fields) -> ScanProfile:
    defaults = {"name": "Fast", "kind": ProfileKind.FAST_DISCOVERY, "port_scope": "all", "masscan_rate": 5_000}
    return ScanProfile.objects.create(slug=fields.pop("slug", "fast"), **{**defaults, **fields})


def target(profile, targets="127.77.0.0/29", ports="") -> ScanTarget:
    return ScanTarget.objects.create(name="t", zone=Zone.default(), targets=targets, ports=ports, profile=profile)


def start(target_, **kwargs) -> ScanRun:
    with mock.patch("scans.queueing.send_on_commit"):
        return services.start_run(target_, **kwargs)


# --- the options -----------------------------------------------------------------------


def test_the_builtin_profile_sweeps_all_tcp_ports_of_live_hosts_and_confirms_with_version_detection():
    profile = ScanProfile.objects.get(slug="fast-discovery")
    options = masscan_options(profile, None, max_rate=10_000, wait=3)
    assert options == {
        "discovery": ["--ping", "-p", "80,443", "--show", "closed", "--retries", "1", "--rate", "1000", "--wait", "3"],
        "sweep": ["-p", "1-65535", "--rate", "1000", "--wait", "3"],
    }
    assert confirm_options(profile, privileged=True, host_timeout=60) == [
        "-sS", "-Pn", "-sV", "-T4", "--max-retries", "2", "--host-timeout", "60s", "-n",
    ]  # fmt: skip


@pytest.mark.parametrize(("rate", "ceiling", "sent"), [(5_000, 10_000, 5_000), (50_000, 10_000, 10_000), (0, 10, 1)])
def test_the_rate_never_exceeds_the_administrators_ceiling(rate, ceiling, sent):
    assert clamp_rate(rate, ceiling) == sent
    options = masscan_options(fast(masscan_rate=rate), None, max_rate=ceiling, wait=3)
    assert options["sweep"][options["sweep"].index("--rate") + 1] == str(sent)


def test_a_ceiling_lowered_after_the_profile_was_saved_still_holds(settings):
    profile = fast(masscan_rate=8_000)
    settings.MASSCAN_MAX_RATE = 500
    run = start(target(profile))
    assert run.masscan_options["sweep"][2:4] == ["--rate", "500"]
    assert run.masscan_options["discovery"][7:9] == ["--rate", "500"]


def test_a_ceiling_lowered_after_the_run_was_queued_holds_for_its_sweep(settings):
    run = start(target(fast(masscan_rate=8_000)))
    settings.MASSCAN_MAX_RATE = 300
    assert discovery.within_ceiling(run.masscan_options["sweep"]) == ["-p", "1-65535", "--rate", "300", "--wait", "3"]
    assert discovery.within_ceiling(["--ping", "--rate", "200"]) == ["--ping", "--rate", "200"]


def test_no_user_text_reaches_masscan_only_code_written_words(settings):
    item = target(fast(discover_hosts=False), targets="127.77.0.1, 127.77.0.9-12", ports=" 443, 80,81-90 ")
    run = start(item)
    assert run.masscan_options == {"discovery": [], "sweep": ["-p", "80-90,443", "--rate", "5000", "--wait", "3"]}
    assert all(MASSCAN_WORD(word) for word in run.masscan_options["sweep"])
    (sweep,) = run.chunks.all()
    # Targets travel in a file the runner writes from the chunk's addresses, never on the command line.
    assert sweep.step == ChunkStep.SWEEP and sweep.targets == [
        "127.77.0.1",
        "127.77.0.9",
        "127.77.0.10/31",
        "127.77.0.12",
    ]
    assert not any("127.77" in word for word in run.masscan_options["sweep"])
    assert "-p" not in run.nmap_options and "-Pn" in run.nmap_options  # each confirm chunk adds its own ports


def test_the_scope_plans_excluded_addresses_out_and_hands_masscan_the_exclusions_that_touch_its_targets():
    ScopeRule.objects.create(network="198.18.16.0/20", action="allow", reason="lab")
    ScopeRule.objects.create(network="198.18.17.0/24", action="exclude", reason="not ours")
    ScopeRule.objects.create(network="198.18.40.0/24", action="exclude", reason="elsewhere")
    run = start(target(fast(), targets="198.18.16.0/22"))
    (sweep,) = run.chunks.all()
    assert sweep.targets == ["198.18.16.0/24", "198.18.18.0/23"] and sweep.size == 768
    assert discovery._exclusions(["198.18.16.0/22"]) == ["198.18.17.0/24"]


def test_a_sweep_chunk_covers_many_addresses_one_masscan_process(settings):
    settings.SCAN_CHUNK_SIZE = 4
    settings.MASSCAN_CHUNK_SIZE = 1024
    run = start(target(fast(), targets="127.77.0.0/24"))
    assert list(run.chunks.values_list("step", "size")) == [(ChunkStep.SWEEP, 256)]


def test_fast_discovery_is_refused_from_a_remote_vantage_point_and_nothing_is_written():
    office = VantagePoint.objects.create(name="office-lan", remote=True)
    with pytest.raises(discovery.SweepRefused, match=r"office-lan.*remote scanner"):
        start(target(fast()), vantage=office)
    assert not ScanRun.objects.exists()


# --- masscan's list output -----------------------------------------------------------------


def test_the_list_output_says_who_answered_and_which_tcp_ports_are_open():
    text = (
        "#masscan\n"
        "open icmp 0 198.18.0.2 1796576807\n"
        "closed tcp 443 198.18.0.3 1796576807\n"
        "open tcp 41022 198.18.0.2 1796576809\n"
        "open tcp 41080 198.18.0.2 1796576809\n"
        "# end\n"
    )
    finds = read_list(io.StringIO(text))
    assert finds.answered == {"198.18.0.2", "198.18.0.3"}
    assert finds.open_ports == {"198.18.0.2": {41022, 41080}}
    # An answer from an address the sweep was not told to probe counts for nothing.
    assert read_list(io.StringIO(text)).only({"198.18.0.3"}).open_ports == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("open tcp 80 198.18.0.2\n", "line 1 is not a masscan list record"),
        ("#masscan\nopen tcp 80 999.18.0.2 1\n", "line 2 has a bad address or port"),
        ("open tcp 70000 198.18.0.2 1\n", "port 70000 is not within"),
        ("banner tcp 80 198.18.0.2 1 http\n", "not a masscan list record"),
        ("open tcp 80 198.18.0.2 " + "1" * 300 + "\n", "longer than 200"),
    ],
)
def test_a_malformed_list_is_refused_naming_the_line(text, message):
    with pytest.raises(MasscanListError, match=message):
        read_list(io.StringIO(text))


# --- the sweep's result, recorded once ----------------------------------------------------------


def claimed_sweep(**profile_fields) -> ScanChunk:
    run = start(target(fast(**profile_fields), targets="127.77.0.0/29"))
    chunk = chunks.claim(run.chunks.get().pk, "worker-1@here")
    assert isinstance(chunk, ScanChunk)
    return chunk


def test_the_sweep_queues_confirm_chunks_for_what_it_found_once_however_often_it_is_delivered(settings):
    settings.SCAN_CHUNK_SIZE = 2
    sweep = claimed_sweep()
    found = {"127.77.0.2": {22, 80}, "127.77.0.3": {22, 80}, "127.77.0.5": {22, 80}, "127.77.0.6": {41022}}
    with mock.patch("scans.queueing.send_on_commit") as send:
        assert discovery.complete_sweep(sweep, found, addresses=8, answered=5)
        assert not discovery.complete_sweep(sweep, found, addresses=8, answered=5)  # the same attempt again
        assert chunks.run_chunk(sweep.pk) is chunks.ChunkOutcome.DONE  # its task delivered again
    run = sweep.run
    confirms = list(run.chunks.filter(step=ChunkStep.CONFIRM).values_list("index", "targets", "ports", "size"))
    # Packed as the re-probe packs (a few more probes than finds, fewer nmap processes), at most
    # SCAN_CHUNK_SIZE hosts a chunk; the extra probes are nmap's real ones, and its coverage says so.
    assert confirms == [
        (1, ["127.77.0.2", "127.77.0.3"], "22,80,41022", 2),
        (2, ["127.77.0.5", "127.77.0.6"], "22,80,41022", 2),
    ]
    assert send.call_count == 1 and len(send.call_args.args[1]) == 2
    sweep.refresh_from_db()
    assert sweep.status == ChunkStatus.SUCCEEDED and sweep.tries.get().outcome == AttemptOutcome.SUCCEEDED
    assert sweep.found == {"addresses": 8, "answered": 5, "hosts": 4, "ports": 7, "swept_ports": "1-65535"}
    assert sweep.coverage == {}  # the sweep probed, but concludes nothing: only nmap's coverage may
    run.refresh_from_db()
    assert (run.hosts_total, run.hosts_done, run.status) == (8 + 4, 8, RunStatus.RUNNING)
    # A confirm chunk's nmap is given the run's confirm options and exactly its ports.
    first = run.chunks.get(index=1)
    assert chunks.nmap_options_of(first)[-2:] == ["-p", "22,80,41022"] and "-Pn" in chunks.nmap_options_of(first)


def test_a_sweep_taken_over_by_another_attempt_cannot_record_the_first_attempts_result():
    sweep = claimed_sweep()
    ScanChunk.objects.filter(pk=sweep.pk).update(heartbeat_at=None, worker="gone@elsewhere")
    takeover = chunks.claim(sweep.pk, "worker-2@here")
    assert takeover.attempts == 2
    with mock.patch("scans.queueing.send_on_commit"):
        assert not discovery.complete_sweep(sweep, {"127.77.0.2": {22}}, addresses=8, answered=1)
        assert discovery.complete_sweep(takeover, {"127.77.0.2": {22}}, addresses=8, answered=1)
    assert takeover.run.chunks.filter(step=ChunkStep.CONFIRM).count() == 1


def test_a_run_cancelled_during_its_sweep_queues_no_confirm_chunk():
    sweep = claimed_sweep()
    assert services.cancel_run(sweep.run)
    with mock.patch("scans.queueing.send_on_commit") as send:
        assert discovery.complete_sweep(sweep, {"127.77.0.2": {22}}, addresses=8, answered=1)
    services.finalize_run(sweep.run_id)
    run = ScanRun.objects.get(pk=sweep.run_id)
    assert run.status == RunStatus.CANCELLED and run.chunks.count() == 1 and not send.called
    assert run.chunks.get().status == ChunkStatus.CANCELLED


def test_a_sweep_that_found_nothing_ends_the_run_with_no_change():
    sweep = claimed_sweep()
    with mock.patch("scans.queueing.send_on_commit"):
        discovery.complete_sweep(sweep, {}, addresses=8, answered=0)
    run = services.finalize_run(sweep.run_id)
    assert run.status == RunStatus.SUCCEEDED and not run.changes.exists()


# --- pages, API, forms ------------------------------------------------------------------------


def test_the_run_page_shows_both_steps_and_what_the_sweep_found(client, viewer):
    sweep = claimed_sweep()
    with mock.patch("scans.queueing.send_on_commit"):
        discovery.complete_sweep(sweep, {"127.77.0.2": {22, 80}}, addresses=8, answered=3)
    client.force_login(viewer)
    page = html.unescape(client.get(sweep.run.get_absolute_url()).content.decode())
    assert "1. Sweep (masscan)" in page and "2. Confirm (nmap)" in page
    assert "8 addresses swept, 3 answered host discovery; 2 open ports found on 1 host" in page
    assert "masscan sweep" in page and "nmap confirm" in page and "nothing concluded: masscan" in page
    assert "--rate 5000" in page


def test_the_run_api_says_each_chunks_step_and_the_sweeps_finds(viewer):
    sweep = claimed_sweep()
    with mock.patch("scans.queueing.send_on_commit"):
        discovery.complete_sweep(sweep, {"127.77.0.2": {22}}, addresses=8, answered=1)
    data = api_client(viewer).get(f"/api/runs/{sweep.run.public_id}/").json()
    assert data["masscan_options"]["sweep"][:2] == ["-p", "1-65535"]
    assert [(chunk["step"], chunk["ports"]) for chunk in data["chunks"]] == [("sweep", ""), ("confirm", "22")]
    assert data["chunks"][0]["found"]["hosts"] == 1


def profile_form(**overrides):
    data = {
        "name": "Sweep fast",
        "slug": "sweep-fast",
        "kind": "fast_discovery",
        "scan_type": "tcp",
        "port_scope": "all",
        "top_ports": "1000",
        "timing": "T4",
        "max_retries": "1",
        "masscan_rate": "20000",
        "discover_hosts": "on",
    }
    data.update(overrides)
    return data


def test_admin_saves_a_fast_discovery_profile_on_the_profiles_page(as_admin, settings):
    settings.MASSCAN_MAX_RATE = 50_000
    response = as_admin.post(reverse("profile-create"), profile_form())
    assert response.status_code == 302
    profile = ScanProfile.objects.get(slug="sweep-fast")
    assert (profile.kind, profile.masscan_rate, profile.discover_hosts) == (ProfileKind.FAST_DISCOVERY, 20_000, True)
    page = html.unescape(as_admin.get(reverse("profile-list")).content.decode())
    assert "masscan sweep at 20000 packets/s (live hosts)" in page and "50000" in page.replace(",", "")


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"masscan_rate": "20001"}, "masscan_rate", "above the ceiling of 20,000"),
        ({"masscan_rate": "0"}, "masscan_rate", "greater than or equal to 1"),
        ({"masscan_rate": "fast"}, "masscan_rate", "Enter a whole number"),
        ({"scan_type": "udp", "port_scope": "top"}, "scan_type", "sweeps TCP ports"),
        ({"port_scope": "top"}, "port_scope", "masscan has no list"),
        ({"kind": "masscan --router-mac x"}, "kind", "Select a valid choice"),
    ],
)
def test_a_bad_fast_discovery_profile_is_refused_with_the_reason_and_nothing_is_written(
    as_admin, settings, overrides, field, message
):
    settings.MASSCAN_MAX_RATE = 20_000
    response = as_admin.post(reverse("profile-create"), profile_form(**overrides))
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not ScanProfile.objects.filter(slug="sweep-fast").exists()


def test_the_api_creates_a_fast_discovery_profile_and_refuses_a_rate_above_the_ceiling(admin, settings):
    settings.MASSCAN_MAX_RATE = 20_000
    client = api_client(admin)
    body = {"name": "Sweep", "slug": "sweep", "kind": "fast_discovery", "port_scope": "all", "masscan_rate": 30_000}
    refused = client.post("/api/profiles/", body, format="json")
    assert refused.status_code == 400 and "MASSCAN_MAX_RATE" in str(refused.json()["masscan_rate"])
    assert not ScanProfile.objects.filter(slug="sweep").exists()
    created = client.post("/api/profiles/", {**body, "masscan_rate": 20_000}, format="json")
    assert created.status_code == 201, created.json()
    assert (created.json()["kind"], created.json()["masscan_rate"], created.json()["discover_hosts"]) == (
        "fast_discovery",
        20_000,
        True,
    )


def test_only_admins_make_fast_discovery_profiles(reviewer, viewer):
    body = {"name": "Sweep", "slug": "sweep", "kind": "fast_discovery", "port_scope": "all"}
    for user in (reviewer, viewer):
        assert api_client(user).post("/api/profiles/", body, format="json").status_code == 403
    assert not ScanProfile.objects.filter(slug="sweep").exists()


def test_a_target_scanned_from_a_remote_vantage_point_cannot_use_fast_discovery(as_admin):
    office = VantagePoint.objects.create(name="office-lan", remote=True)
    data = {
        "name": "office",
        "zone": Zone.default().pk,
        "targets": "127.0.0.1",
        "ports": "",
        "profile": ScanProfile.objects.get(slug="fast-discovery").pk,
        "vantage_points": [office.pk],
        "schedule_kind": "manual",
        "schedule_timezone": "UTC",
        "enabled": "on",
    }
    response = as_admin.post(reverse("target-create"), data)
    assert response.status_code == 200
    assert "office-lan is scanned by a remote scanner" in " ".join(response.context["form"].errors["profile"])
    assert not ScanTarget.objects.exists()


def test_the_command_adds_a_fast_discovery_profile_and_refuses_a_bad_one(settings, capsys):
    settings.MASSCAN_MAX_RATE = 20_000
    with pytest.raises(CommandError, match=r"masscan_rate: 30,000 packets/s is above the ceiling of 20,000"):
        call_command("profile", "add", "sweep", "--name", "Sweep", "--kind", "fast_discovery", "--rate", "30000")
    assert not ScanProfile.objects.filter(slug="sweep").exists()
    call_command("profile", "add", "sweep", "--name", "Sweep", "--kind", "fast_discovery", "--rate", "20000")
    profile = ScanProfile.objects.get(slug="sweep")
    assert (profile.kind, profile.port_scope, profile.masscan_rate) == (ProfileKind.FAST_DISCOVERY, "all", 20_000)
    assert AuditEntry.objects.filter(action="profile.create").exists()
    call_command("profile", "list")
    assert "Fast discovery (masscan sweeps, nmap confirms), 20000 packets/s, live hosts only" in capsys.readouterr().out


def test_a_sweep_whose_vantage_point_became_remote_is_failed_not_sent_to_a_scanner(settings):
    run = start(target(fast()))
    run.vantage.remote = True
    run.vantage.key = "ab" * 32
    run.vantage.save()
    with mock.patch("scans.tasks.remote_scan.apply_async") as order:
        queueing.send(ScanRun.objects.select_related("vantage").get(pk=run.pk), [run.chunks.get().pk])
    assert not order.called
    sweep = run.chunks.get()
    assert sweep.status == ChunkStatus.FAILED and "remote scanner, which runs nmap only" in sweep.error
    assert services.finalize_run(run.pk).status == RunStatus.FAILED
