"""Target fields: parsed into typed objects; anything else names the bad token."""

import pytest

from scans.targets import TargetSpecError, format_targets, parse_targets


@pytest.mark.parametrize(
    ("text", "kinds", "canonical"),
    [
        ("127.0.0.1", ["address"], "127.0.0.1"),
        ("198.18.0.0/24", ["network"], "198.18.0.0/24"),
        ("198.18.0.5/24", ["network"], "198.18.0.0/24"),
        ("198.18.0.1-50", ["range"], "198.18.0.1-198.18.0.50"),
        ("198.18.0.1-198.18.0.50", ["range"], "198.18.0.1-198.18.0.50"),
        ("fd00::1", ["address"], "fd00::1"),
        ("fd00::/120", ["network"], "fd00::/120"),
        ("db1.corp.example", ["hostname"], "db1.corp.example"),
        ("DB1.Corp.Example.", ["hostname"], "db1.corp.example"),
        ("bücher.example", ["hostname"], "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", ["hostname"], "xn--bcher-kva.example"),
        ("127.0.0.1, 127.0.0.2\n127.0.0.1", ["address", "address"], "127.0.0.1\n127.0.0.2"),
    ],
)
def test_valid_targets_are_parsed_and_canonical(text, kinds, canonical):
    items = parse_targets(text)
    assert [item.kind for item in items] == kinds
    assert format_targets(items) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one"),
        ("-iL /etc/passwd", "'-iL' looks like a command-line option"),
        ("127.0.0.1 -oN /tmp/x", "'-oN' looks like a command-line option"),
        ("--script=x", "looks like a command-line option"),
        ("$(id)", r"'\$\(id\)' is not a valid"),
        ("a;b", "'a;b' is not a valid"),
        ("'", "is not a valid"),
        ("0.0.0.0/0", "more than 65,536 addresses"),
        ("::/0", "more than 65,536 addresses"),
        ("198.18.0.0/15", "more than 65,536 addresses"),
        ("999.1.1.1", "not a valid IPv4 address"),
        ("198.18.0.50-10", "backwards range"),
        ("198.18.0.1-fd00::1", "mixes IPv4 and IPv6"),
        ("fe80::1%eth0", "not a valid IPv6 address"),
        ("exa mple\x00.com", "NUL"),
        ("-", "looks like a command-line option"),
        ("a" * 64 + ".example", "is not a valid"),
        ("under_score.example", "is not a valid"),
    ],
)
def test_invalid_targets_name_the_bad_token(text, message):
    with pytest.raises(TargetSpecError, match=message):
        parse_targets(text)
