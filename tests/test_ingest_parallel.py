"""Parallel parsing: an address listed in two fragments is found by hash, and only a real one raises."""

from array import array

import pytest

from scans.ingest.postgres.parallel import FRAGMENT_MAX_BYTES, _check_fragments, _parts
from scans.nmap_xml import HostListedTwice

pytestmark = pytest.mark.sqlite  # no database


def write_fragment(workdir, index: int, addresses: list[str], hashes: list[int]) -> None:
    (workdir / f"{index}.copy.hosts").write_text("".join(f"{address}\n" for address in addresses))
    (workdir / f"{index}.copy.hashes").write_bytes(array("q", hashes).tobytes())


def test_an_address_in_two_fragments_raises_and_a_hash_collision_does_not(tmp_path):
    seen = array("q")
    write_fragment(tmp_path, 0, ["198.18.0.1", "198.18.0.2"], [1, 2])
    write_fragment(tmp_path, 1, ["198.18.0.3"], [2])  # another address with an equal hash
    write_fragment(tmp_path, 2, ["198.18.0.4", "198.18.0.2"], [4, 2])
    _check_fragments(str(tmp_path), 0, seen)
    _check_fragments(str(tmp_path), 1, seen)
    with pytest.raises(HostListedTwice) as raised:
        _check_fragments(str(tmp_path), 2, seen)
    assert raised.value.address == "198.18.0.2"


def test_a_large_file_is_cut_into_fragments_of_bounded_size(settings):
    settings.INGEST_PARALLEL_MIN_BYTES = 16 << 20
    assert _parts(1 << 20) == 1
    assert _parts(20 << 20) >= 2
    assert _parts(100 * FRAGMENT_MAX_BYTES) == 100
