"""Port fields: parsed into integer ranges within 1-65535, normalised, or refused."""

import pytest

from inventory.ports import PortSet, PortSpecError


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("22", "22"),
        ("22,80,443", "22,80,443"),
        ("443, 80 ,22", "22,80,443"),
        ("1-1024", "1-1024"),
        ("80,81,82-90", "80-90"),
        ("1-100 50-200", "1-200"),
        ("22\n80", "22,80"),
        ("65535", "65535"),
        ("1-65535", "1-65535"),
    ],
)
def test_valid_ports_are_normalised(text, normalised):
    assert str(PortSet.parse(text)) == normalised


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one port"),
        ("   ", "at least one port"),
        ("0", "0 is not a port"),
        ("65536", "65536 is not a port"),
        ("0-99999", "is not a port"),
        ("80-22", "backwards range"),
        ("22,", "empty item"),
        (",22", "empty item"),
        ("22,,80", "empty item"),
        ("http", "'http' is not a port"),
        ("22;id", "is not a port"),
        ("-p 22", "'-p' is not a port"),
        ("T:22", "is not a port"),
        ("22\x0080", "NUL"),
        (",".join(str(port) for port in range(1, 10_002)), "Too many port items"),
    ],
)
def test_invalid_ports_are_refused_with_a_clear_error(text, message):
    with pytest.raises(PortSpecError, match=message):
        PortSet.parse(text)


def test_membership_and_size():
    ports = PortSet.parse("22,80-90,443")
    assert 22 in ports and 85 in ports and 443 in ports
    assert 21 not in ports and 91 not in ports and 444 not in ports
    assert len(ports) == 13


def test_nmap_service_lists_are_read_back():
    assert PortSet.from_nmap("1,3-4,6-7") == PortSet.parse("1,3,4,6,7")
    assert PortSet.from_nmap("") == PortSet()
