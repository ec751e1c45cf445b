"""Orders to remote scanners and their results: what crosses the broker, signed by the vantage point's key.

A remote scanner (``manage.py run_scanner``) holds no database credentials:
the centre sends it each chunk as an *order* (targets, the vetted nmap
options, the scan scope) and it sends back a *result* (nmap's XML, or why it
failed), and a *heartbeat* while it runs. Whoever can write to the broker
could otherwise make a scanner scan anything with any option, or feed the
inventory made-up results; so every message is signed with HMAC-SHA256 under
the vantage point's key (``reach.VantagePoint.key``), with its purpose in
the signed text (an order can never pass for a result), and orders expire.
The scanner also checks the options against the same table the centre
builds them from (``check_options``) and the targets against the order's scope
and its own PORTWATCH_SCANNER_ALLOWED_NETWORKS. Use TLS to the broker as well
(README, "Reachable from where"): signatures prove who wrote a message, TLS
keeps it from being read.

Pure: dicts and keys in, dicts and verdicts out. Nothing here touches the database.
"""

import base64
import hashlib
import hmac
import json
import re
import zlib
from datetime import datetime, timedelta

from inventory.ports import PortSet, PortSpecError
from scans.constants import NSE_SCRIPT_ALLOWLIST

VERSION = 1
ORDER, RESULT, HEARTBEAT = "order", "result", "heartbeat"
# A result's XML, once inflated, is refused beyond this (a chunk's scan is far smaller).
RESULT_MAX_BYTES = 256 << 20


class BadMessage(ValueError):
    """A message that is not signed by the vantage point's key, or says something it may not."""


def _canonical(purpose: str, body: dict) -> bytes:
    return purpose.encode() + b"\n" + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(purpose: str, body: dict, key: str) -> str:
    return hmac.new(bytes.fromhex(key), _canonical(purpose, body), hashlib.sha256).hexdigest()


def verify(purpose: str, body: dict, signature: str, key: str) -> None:
    """Raise BadMessage unless ``signature`` is ``body``'s, for ``purpose``, under ``key``."""
    if not key:
        raise BadMessage("the vantage point has no key: it is not a remote vantage point")
    if not isinstance(signature, str) or not hmac.compare_digest(sign(purpose, body, key), signature):
        raise BadMessage(f"the {purpose} is not signed with the vantage point's key")
    if body.get("v") != VERSION:
        raise BadMessage(f"unknown {purpose} version {body.get('v')!r}")


def check_fresh(body: dict, now: datetime) -> None:
    try:
        expires = datetime.fromisoformat(body["expires_at"])
    except (KeyError, TypeError, ValueError):
        raise BadMessage("the order has no valid expiry") from None
    if now > expires:
        raise BadMessage(f"the order expired at {expires.isoformat()}")


def expiry(now: datetime, seconds: int) -> str:
    return (now + timedelta(seconds=seconds)).isoformat()


# --- the options a scanner accepts: exactly what scans.profiles can build -----------------------

_FLAGS = frozenset({"-sT", "-sS", "-sU", "-sV", "-n", "-Pn", *(f"-T{level}" for level in range(6))})
_NUMBER = re.compile(r"[0-9]{1,6}").fullmatch
_SECONDS = re.compile(r"[0-9]{1,7}s").fullmatch


def check_options(options: list) -> list[str]:
    """``options`` if every one is one ``scans.profiles`` builds; BadMessage naming the first that is not.

    No output, input-file, script-argument or data option can pass: the
    scanner adds its own ``-iL`` and ``-oX``.
    """
    if not isinstance(options, list) or not all(isinstance(option, str) for option in options):
        raise BadMessage("the options are not a list of words")
    words = iter(options)
    for option in words:
        if option in _FLAGS:
            continue
        if option in ("-p", "--top-ports", "--max-retries", "--host-timeout"):
            value = next(words, None)
            if value is None or not _valid_value(option, value):
                raise BadMessage(f"refused option {option} {value!r}")
            continue
        if option.startswith("--script="):
            scripts = option.removeprefix("--script=").split(",")
            if not scripts or not set(scripts) <= set(NSE_SCRIPT_ALLOWLIST):
                raise BadMessage(f"refused scripts {option!r}: outside the allowlist")
            continue
        raise BadMessage(f"refused option {option!r}")
    return options


def _valid_value(option: str, value: str) -> bool:
    if option == "-p":
        try:
            PortSet.parse(value)
        except PortSpecError:
            return False
        return True
    if option == "--host-timeout":
        return bool(_SECONDS(value))
    return bool(_NUMBER(value))


# --- the XML a result carries ----------------------------------------------------------------


def pack(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 6)).decode("ascii")


def unpack(text: str, limit: int = RESULT_MAX_BYTES) -> bytes:
    """The XML of a result, refusing more than ``limit`` bytes once inflated (a compressed bomb)."""
    try:
        packed = base64.b64decode(text.encode("ascii"), validate=True)
        inflater = zlib.decompressobj()
        data = inflater.decompress(packed, limit + 1)
    except (ValueError, zlib.error, UnicodeEncodeError) as error:
        raise BadMessage(f"the result's XML is not readable ({error})") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise BadMessage(f"the result's XML is larger than {limit} bytes")
    return data
