"""CSV and JSON exports of the host and port lists, with the page's filters.

Both stream: a million ports leave the database 2,000 rows at a time and
never sit in memory. CSV cells that a spreadsheet would read as a formula
(text starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return;
scanned hosts choose their hostnames and banners) are prefixed with an
apostrophe. JSON is data for programs and carries the values as they are.
"""

import csv
import json
from collections.abc import Callable, Iterable, Iterator

from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from django.utils import timezone

from inventory.models import tags_of

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 2000


def neutralise(value):
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _Echo:
    def write(self, value):
        return value


def host_row(host) -> dict:
    return {
        "address": host.address,
        "zone": host.zone.name,
        "hostnames": " ".join(host.hostnames),
        "tags": " ".join(tag.name for tag in tags_of(host)),
        "owner": host.owner,
        "status": host.status,
        "open_ports": host.open_count,
        "unreviewed": host.unreviewed_count,
        "violating": host.violating_count,
        "risk": host.risk_label,
        "last_change": host.last_change_at,
        "last_scanned": host.last_scanned,
    }


def service_row(service) -> dict:
    rule = service.policy_rule
    return {
        "address": service.host.address,
        "zone": service.host.zone.name,
        "hostname": service.host.hostname,
        "protocol": service.protocol,
        "port": service.port,
        "state": service.state,
        "service": service.name,
        "product": service.product,
        "version": service.version,
        "policy": service.policy_status or "",
        "rule": str(rule.public_id) if rule else "",
        "justification": rule.justification if rule else "",
        "risk": service.risk_label,
        "first_seen": service.first_seen,
        "last_changed": service.last_changed,
    }


def respond(fmt: str, name: str, rows: Iterable, to_row: Callable[[object], dict]) -> StreamingHttpResponse:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    if fmt == "json":
        response = StreamingHttpResponse(_json(rows, to_row), content_type="application/json")
        extension = "json"
    else:
        response = StreamingHttpResponse(_csv(rows, to_row), content_type="text/csv; charset=utf-8")
        extension = "csv"
    response["Content-Disposition"] = f'attachment; filename="portwatch-{name}-{stamp}.{extension}"'
    return response


def _csv(rows: Iterable, to_row) -> Iterator[str]:
    writer = csv.writer(_Echo())
    header_written = False
    for item in rows:
        row = to_row(item)
        if not header_written:
            yield writer.writerow(list(row))
            header_written = True
        yield writer.writerow([neutralise(_plain(value)) for value in row.values()])


def _plain(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def _json(rows: Iterable, to_row) -> Iterator[str]:
    yield "["
    first = True
    for item in rows:
        yield ("" if first else ",\n") + json.dumps(to_row(item), cls=DjangoJSONEncoder)
        first = False
    yield "]\n"


# For commands that write an export to standard output (certs' ``certificates``).
csv_lines = _csv
json_lines = _json
