"""COPY encoding: one host's observation as rows of the staging table ``pw_obs``.

The hot path of a large import: every host of a 262k-host file goes through
``copy_rows``, in the parser processes (``parallel``) or in-process
(``apply.stage_observations``). Kept apart from the SQL so that its format,
``COLUMNS`` and the row kinds (``StagedRow``) are read in one place: the SQL
(``sql``) compares ``row_kind`` with ``StagedRow`` members, never with bare
letters.
"""

import hashlib
import json
import re
from enum import StrEnum

from scans.nmap_xml import ALL_PROTOCOLS, HostObservation


class StagedRow(StrEnum):
    """What a row of ``pw_obs`` carries (its ``row_kind``)."""

    HOST = "h"  # a host, with its plain ports as arrays
    PORT = "p"  # a port with more to say than its number, state and name
    RANGE = "o"  # a summarised port range that is not "every other port"


COLUMNS = (
    "row_kind, address, up, timed_out, hostnames, other_state, protocols, ports, states, names, "
    "protocol, port, port_hi, state, name, product, version, extrainfo, identified, scripts, sig"
)
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]").search
# A port that fits in the host row's arrays: no text that would need quoting.
# fullmatch: "$" would also match before a trailing newline ("http\n" is not plain).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+/-]*").fullmatch
_NULLS_H = "\t".join(["\\N"] * 10)
_HOST, _PORT, _RANGE = StagedRow.HOST.value, StagedRow.PORT.value, StagedRow.RANGE.value


def _text(value: str) -> str:
    """A value in COPY's text format (backslash, tab and newlines escaped)."""
    if _NEEDS_ESCAPE(value):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _sig(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


# Service names seen so far -> whether they fit in a host row's arrays. nmap
# uses a few hundred names, so each is checked once; the cache is emptied if
# a file makes up more (see _plain_name).
_PLAIN_NAMES: dict[str, bool] = {}
_PLAIN_NAMES_MAX = 4096


def _plain_name(name: str) -> bool:
    plain = bool(_PLAIN_NAME(name)) and name.upper() != "NULL"
    if len(_PLAIN_NAMES) >= _PLAIN_NAMES_MAX:
        _PLAIN_NAMES.clear()
    _PLAIN_NAMES[name] = plain
    return plain


def copy_rows(observation: HostObservation) -> str:
    """The COPY lines of one host (the hot path of a large import).

    One row for the host, carrying its plain ports (a name guessed from the
    port number, nothing else) as arrays, which keeps a 65k-host scan at 65k
    rows; one row per port with more to say (product, version, scripts); one
    per port range of a summary that is not "every other port".

    The host row also carries a signature of everything its port list says
    (None when nmap gave up on the host or summarised its ports in several
    states): see Host.ports_sig.
    """
    address = observation.address
    other_state = "\\N"
    ranges = []
    for protocol, state, ports in observation.other_ports:
        if protocol == ALL_PROTOCOLS:
            other_state = state
        else:
            ranges.extend((protocol, state, low, high) for low, high in ports.ranges)
    protocols, numbers, states, names, rich = [], [], [], [], []
    for protocol, number, state, name, product, version, extrainfo, identified, scripts, _pem in observation.ports:
        plain = _PLAIN_NAMES.get(name)
        if plain is None:
            plain = _plain_name(name)
        if identified or product or version or extrainfo or scripts or not plain:
            scripts_json = _text(json.dumps(dict(scripts))) if scripts else "\\N"
            rich.append(
                f"{_PORT}\t{address}\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t{protocol}\t{number}\t\\N\t"
                f"{state}\t{_text(name)}\t{_text(product)}\t{_text(version)}\t"
                f"{_text(extrainfo)}\t{'t' if identified else 'f'}\t{scripts_json}\t\\N\n"
            )
        else:
            protocols.append(protocol)
            numbers.append(str(number))
            states.append(state)
            names.append(name)
    arrays = f"{{{','.join(protocols)}}}\t{{{','.join(numbers)}}}\t{{{','.join(states)}}}\t{{{','.join(names)}}}"
    rich_text = "".join(rich)
    signed = observation.up and not observation.timed_out and not ranges and len(observation.other_ports) <= 1
    sig = str(_sig(f"{other_state}\t{arrays}\t{rich_text}")) if signed else "\\N"
    hostnames = _text(json.dumps(list(observation.hostnames))) if observation.hostnames else "[]"
    lines = [
        f"{_HOST}\t{address}\t{'t' if observation.up else 'f'}\t{'t' if observation.timed_out else 'f'}\t{hostnames}\t"
        f"{other_state}\t{arrays}\t{_NULLS_H}\t{sig}\n",
        rich_text,
    ]
    for protocol, state, low, high in ranges:
        lines.append(
            f"{_RANGE}\t{address}\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t{protocol}\t{low}\t{high}\t{state}\t"
            "\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n"
        )
    return "".join(lines)
