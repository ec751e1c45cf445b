"""The merge rule for an address listed more than once (scans.merge): pure functions, no database."""

import pytest

from inventory.choices import PortState
from inventory.ports import PortSet
from scans.merge import (
    HostMerge,
    merge_duplicates,
    merge_hosts,
    merge_listed,
    merge_summaries,
    repeated_addresses,
)
from scans.nmap_xml import ALL_PROTOCOLS, HostObservation, PortObservation

A = "198.18.40.1"
OPEN, CLOSED, FILTERED = PortState.OPEN.value, PortState.CLOSED.value, PortState.FILTERED.value
ALL_CLOSED = ((ALL_PROTOCOLS, CLOSED, PortSet()),)
ALL_FILTERED = ((ALL_PROTOCOLS, FILTERED, PortSet()),)
PROBED = {"tcp": PortSet.parse("1-1000")}


def port(number: int, state: str = OPEN, **fields) -> PortObservation:
    return PortObservation("tcp", number, state, **fields)


def entry(*ports, up=True, hostnames=(), other=ALL_CLOSED, timed_out=False, address=A) -> HostObservation:
    return HostObservation(address, up, hostnames, tuple(ports), other, timed_out)


def states(host: HostObservation) -> dict[int, str]:
    return {observation.port: observation.state for observation in host.ports}


def test_hostnames_are_united_in_order():
    merged = merge_hosts(entry(hostnames=("www.example.org", "a")), entry(hostnames=("example.org", "a")))
    assert merged.hostnames == ("www.example.org", "a", "example.org")


def test_the_host_is_up_if_any_entry_is_up_and_a_down_entry_adds_only_names():
    merged = merge_hosts(entry(port(22), up=False, hostnames=("down.example",)), entry(port(80)))
    assert merged.up and states(merged) == {80: OPEN}
    assert merged.hostnames == ("down.example",)
    assert not merge_hosts(entry(up=False), entry(up=False)).up


def test_ports_are_united():
    assert states(merge_hosts(entry(port(22)), entry(port(80)))) == {22: OPEN, 80: OPEN}


@pytest.mark.parametrize(
    ("first", "second", "kept"),
    [
        (OPEN, FILTERED, OPEN),
        (FILTERED, OPEN, OPEN),
        (CLOSED, OPEN, OPEN),
        (FILTERED, CLOSED, CLOSED),
        (CLOSED, FILTERED, CLOSED),
    ],
)
def test_the_more_definite_state_wins(first, second, kept):
    assert states(merge_hosts(entry(port(80, first)), entry(port(80, second)))) == {80: kept}


def test_an_identified_service_beats_a_guess_and_scripts_are_united():
    guess = port(22, name="ssh", scripts=(("banner", "SSH-2.0-x"),))
    identified = port(
        22, name="ssh", product="OpenSSH", version="9.2", identified=True, scripts=(("ssh-hostkey", "k"),)
    )
    for order in ((guess, identified), (identified, guess)):
        (merged,) = merge_hosts(entry(order[0]), entry(order[1])).ports
        assert (merged.product, merged.version, merged.identified) == ("OpenSSH", "9.2", True)
        assert dict(merged.scripts) == {"banner": "SSH-2.0-x", "ssh-hostkey": "k"}
        assert merged.scripts[0][0] == "ssh-hostkey"  # the winner's first


def test_a_named_banner_beats_a_bare_open_port():
    """masscan: a syn-ack record and a banner record of one port."""
    banner = port(41022, name="ssh", scripts=(("masscan-ssh", "SSH-2.0-OpenSSH_9.2p1"),))
    (merged,) = merge_hosts(entry(port(41022), other=()), entry(banner, other=())).ports
    assert merged.name == "ssh" and merged.scripts == (("masscan-ssh", "SSH-2.0-OpenSSH_9.2p1"),)


def test_a_complete_entry_vouches_and_a_timed_out_one_proves_only_what_it_found_open():
    gave_up = entry(port(22), port(80, CLOSED), port(443, FILTERED), timed_out=True)
    complete = entry(port(22), other=ALL_CLOSED)
    for order in ((gave_up, complete), (complete, gave_up)):
        merged = merge_hosts(*order)
        assert not merged.timed_out
        # 80 and 443 come from the entry nmap gave up on: not observed (the complete
        # entry's summary speaks for them); 22 open is true either way.
        assert states(merged) == {22: OPEN}
        assert merged.other_ports == ALL_CLOSED


def test_timed_out_only_if_every_up_entry_timed_out():
    merged = merge_hosts(entry(port(22), timed_out=True), entry(port(80, CLOSED), timed_out=True))
    assert merged.timed_out
    assert states(merged) == {22: OPEN, 80: CLOSED}  # the diff ignores a timed-out host's closed ports
    assert merge_hosts(entry(up=False), entry(port(22), timed_out=True)).timed_out
    assert not merge_hosts(entry(up=False), entry(port(22))).timed_out


def test_a_listing_beats_another_entrys_summary():
    """An open port is always listed; a summary could only turn a listed "filtered" into "closed"."""
    merged = merge_hosts(entry(port(80, FILTERED), other=ALL_CLOSED), entry(port(22), other=ALL_CLOSED))
    assert states(merged) == {80: FILTERED, 22: OPEN}


def test_summaries_the_same_are_kept_and_two_every_other_port_take_the_more_definite():
    assert merge_hosts(entry(), entry()).other_ports == ALL_CLOSED
    assert merge_hosts(entry(other=ALL_FILTERED), entry(other=ALL_CLOSED)).other_ports == ALL_CLOSED


def test_summaries_of_different_shapes_are_spelt_out_per_port():
    some_filtered = (("tcp", CLOSED, PortSet.parse("1-499")), ("tcp", FILTERED, PortSet.parse("500-1000")))
    merged = merge_summaries(some_filtered, ALL_FILTERED, PROBED)
    assert merged == (("tcp", CLOSED, PortSet.parse("1-499")), ("tcp", FILTERED, PortSet.parse("500-1000")))
    overlap = (("tcp", CLOSED, PortSet.parse("400-600")),)
    assert merge_summaries(some_filtered, overlap, PROBED) == (
        ("tcp", CLOSED, PortSet.parse("1-600")),
        ("tcp", FILTERED, PortSet.parse("601-1000")),
    )


def test_summaries_that_cannot_be_spelt_out_say_nothing():
    some = (("tcp", CLOSED, PortSet.parse("1-10")),)
    assert merge_summaries(some, ALL_FILTERED, None) is None
    merged = HostMerge(A, None).add(entry(other=some)).add(entry(other=ALL_FILTERED)).result()
    assert merged.other_ports == ()  # unlisted ports: not observed, never closed
    many = tuple(("tcp", CLOSED, PortSet([(n, n)])) for n in range(1, 20000, 2))
    assert merge_summaries(many, ALL_FILTERED, {"tcp": PortSet.all_ports()}) is None


def test_an_entry_without_a_summary_leaves_the_others():
    assert merge_hosts(entry(other=()), entry(other=ALL_FILTERED)).other_ports == ALL_FILTERED


def test_bounded_hostnames_and_scripts():
    entries = [entry(port(22, scripts=((f"s{i}", "x"),)), hostnames=(f"h{i}",)) for i in range(500)]
    merged = merge_hosts(*entries)
    assert len(merged.hostnames) == 64
    assert len(merged.ports[0].scripts) == 32


def test_merge_duplicates_keeps_first_order_and_passes_singles_through():
    other = entry(port(443), address="198.18.40.2")
    observations = [entry(port(22)), other, entry(port(80))]
    merged = merge_duplicates(observations, PROBED)
    assert [host.address for host in merged] == [A, "198.18.40.2"]
    assert merged[1] is other
    assert states(merged[0]) == {22: OPEN, 80: OPEN}


def test_merge_listed_streams_singles_and_releases_a_repeated_address_after_its_last_entry():
    other = entry(port(443), address="198.18.40.2")
    observations = [entry(port(22)), entry(port(80)), other, entry(port(8080))]
    repeated = repeated_addresses(observations)
    assert repeated == {A: 3}
    out = merge_listed(iter(observations), repeated, PROBED)
    assert next(out) is other  # yielded as soon as it was read
    last = next(out)
    assert states(last) == {22: OPEN, 80: OPEN, 8080: OPEN}
    assert next(out, None) is None


def test_merging_is_the_same_whatever_the_order_of_a_hosts_entries():
    entries = [
        entry(port(22, FILTERED), port(80), hostnames=("a",)),
        entry(port(22), port(443, CLOSED), hostnames=("b",), other=ALL_FILTERED),
        entry(port(80, CLOSED, name="http"), up=False),
    ]
    results = {
        tuple(sorted((p.port, p.state) for p in merge_hosts(*order).ports))
        for order in (entries, entries[::-1], entries[1:] + entries[:1])
    }
    assert results == {((22, OPEN), (80, OPEN), (443, CLOSED))}
