"""The findings kept per port (``PortFinding``), judged in SQL for many hosts at once.

``reconcile`` judges one host's ports for its page; this module judges them
the same way (``reconcile.classify``, as a CASE) for a set of hosts in one
statement and keeps the result: after a report (its host), after a scan's
changes (the hosts they touch that have a report, ``listeners.signals``),
or for every host (``refresh()``: the sweep's first run). The tests hold
the two to each other.

A port counts as probed when some view of it exists, or the home's last
scan that found the host probed it (``Host.seen_ports``: a few distinct
sets, written into the statement as port ranges).
"""

from collections import defaultdict

from django.db import connection, transaction
from django.db.models import Q, Subquery
from django.utils import timezone

from inventory import binds, policy
from inventory.choices import PortState
from inventory.models import PortRule, ProbedPortSet
from listeners.choices import Finding, Scope
from listeners.models import Listener, PortFinding

# More distinct probed sets than this and "probed by the home's last scan" is left out (never seen here).
MAX_PROBED_SETS = 200

# Built from constants, the models' tables and the choices' values; the hosts as integer ids.
# Two judgings of one host at once (a report, a scan's changes, the sweep) each delete its rows
# first: the later one's inserts meet the earlier one's and take their place (ON CONFLICT).
_SQL = """
INSERT INTO listeners_portfinding (host_id, protocol, port, finding, scope, reachable, taken_at)
WITH hosts AS (
    SELECT h.id, h.seen_ports_id, r.taken_at
    FROM inventory_host h
    JOIN listeners_hostreport r ON r.id = (
        SELECT n.id FROM listeners_hostreport n
        WHERE n.host_id = h.id AND n.applied ORDER BY n.taken_at DESC, n.id DESC LIMIT 1
    )
    WHERE {hosts}
),
seen AS (
    SELECT l.host_id, l.protocol, l.port,
           MAX(CASE l.scope WHEN '{all}' THEN 2 WHEN '{address}' THEN 1 ELSE 0 END) AS rank, 0 AS open, 0 AS probed
    FROM listeners_listener l JOIN hosts ON hosts.id = l.host_id
    GROUP BY l.host_id, l.protocol, l.port
    UNION ALL
    SELECT s.host_id, s.protocol, s.port, -1, CASE WHEN s.state = '{open}' THEN 1 ELSE 0 END, 1
    FROM inventory_service s JOIN hosts ON hosts.id = s.host_id
    UNION ALL
    SELECT v.host_id, v.protocol, v.port, -1, CASE WHEN v.state = '{open}' THEN 1 ELSE 0 END, 1
    FROM reach_portview v JOIN hosts ON hosts.id = v.host_id
),
ports AS (
    SELECT host_id, protocol, port, MAX(rank) AS rank, MAX(open) AS open, MAX(probed) AS probed
    FROM seen GROUP BY host_id, protocol, port
),
judged AS (
    SELECT ports.host_id, ports.protocol, ports.port, ports.open, hosts.taken_at,
           CASE ports.rank WHEN 2 THEN '{all}' WHEN 1 THEN '{address}' WHEN 0 THEN '{loopback}' ELSE '' END AS scope,
           CASE
               WHEN ports.rank >= 1 AND ports.open = 1 THEN '{exposed}'
               WHEN ports.rank >= 1 AND (ports.probed = 1 OR {covered}) THEN '{shielded}'
               WHEN ports.rank >= 1 THEN '{unscanned}'
               WHEN ports.open = 1 THEN '{forwarded}'
               WHEN ports.rank = 0 THEN '{local}'
           END AS finding
    FROM ports JOIN hosts ON hosts.id = ports.host_id
)
SELECT host_id, protocol, port, finding, scope, open = 1, taken_at FROM judged WHERE finding IS NOT NULL
ON CONFLICT (host_id, protocol, port) DO UPDATE SET
    finding = excluded.finding, scope = excluded.scope, reachable = excluded.reachable, taken_at = excluded.taken_at
"""

_VALUES = {
    "all": Scope.ALL.value,
    "address": Scope.ADDRESS.value,
    "loopback": Scope.LOOPBACK.value,
    "open": PortState.OPEN.value,
    **{finding.value: finding.value for finding in Finding},
}


def refresh(host_ids=None) -> int:
    """Judge again the hosts ``host_ids`` (None: every host); the number of findings kept for them."""
    if host_ids is None:
        where = "TRUE"
    else:
        ids = sorted({int(pk) for pk in host_ids})
        if not ids:
            return 0
        where = f"h.id IN ({', '.join(str(pk) for pk in ids)})"
    statement = _SQL.format(hosts=where, covered=_covered(), **_VALUES)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql" and host_ids is None:
            # Every host: the grouping of a few million rows would spill to disk at the default 4 MB.
            cursor.execute("SET LOCAL work_mem = '256MB'")
        stale = PortFinding.objects.all() if host_ids is None else PortFinding.objects.filter(host_id__in=ids)
        stale._raw_delete(stale.db)  # no signals or cascades to run: one DELETE
        cursor.execute(statement)
        judged = cursor.rowcount
        judge_binds(None if host_ids is None else ids)
        return judged


def judge_binds(host_ids=None) -> int:
    """Mark the findings whose listeners break where a port rule lets them listen (``PortRule.listen_on``).

    The rule is the most specific unexpired one that says where (as
    ``inventory.policy`` orders them) among the rules covering the port:
    a rule that says nothing about listening leaves the requirement of a
    wider one in force. Returns how many findings break one.
    """
    now = timezone.now()
    findings = PortFinding.objects.all() if host_ids is None else PortFinding.objects.filter(host_id__in=host_ids)
    with transaction.atomic():
        findings.exclude(bind_rule=None).update(bind_rule=None)
        rules = PortRule.objects.exclude(listen_on="").filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        ports = Q(pk__in=[])
        for rule in rules:
            ports |= Q(port__gte=rule.port_start, port__lte=rule.port_end)
        if not rules:
            return 0
        governing = policy.matching_rules(now).exclude(listen_on="").values("pk")[:1]
        candidates = list(
            findings.filter(ports)
            .exclude(scope="")
            .annotate(rule_id=Subquery(governing))
            .exclude(rule_id=None)
            .values_list("pk", "host_id", "protocol", "port", "rule_id")
        )
        if not candidates:
            return 0
        listen_on = dict(PortRule.objects.filter(pk__in={row[4] for row in candidates}).values_list("pk", "listen_on"))
        addresses: dict[tuple, list[str]] = defaultdict(list)
        wanted = {(host, protocol, port) for _, host, protocol, port, _ in candidates}
        listeners = Listener.objects.filter(host_id__in={key[0] for key in wanted}).values_list(
            "host_id", "protocol", "port", "address"
        )
        for host, protocol, port, address in listeners:
            if (host, protocol, port) in wanted:
                addresses[(host, protocol, port)].append(address)
        breaking: dict[int, list[int]] = defaultdict(list)
        for pk, host, protocol, port, rule_id in candidates:
            if any(not binds.allows(listen_on[rule_id], address) for address in addresses[(host, protocol, port)]):
                breaking[rule_id].append(pk)
        for rule_id, pks in breaking.items():
            for start in range(0, len(pks), 5000):
                PortFinding.objects.filter(pk__in=pks[start : start + 5000]).update(bind_rule_id=rule_id)
        return sum(len(pks) for pks in breaking.values())


def probed_sets_considered() -> bool:
    """Whether "probed by the home's last scan" counts (few distinct sets); ``reconcile`` asks the same."""
    return ProbedPortSet.objects.count() <= MAX_PROBED_SETS


def _covered() -> str:
    """Whether ``ports`` lies in its host's ``seen_ports``, as SQL (set ids and port numbers only)."""
    sets = list(ProbedPortSet.objects.all()[: MAX_PROBED_SETS + 1])
    if not sets or len(sets) > MAX_PROBED_SETS:
        return "FALSE"
    cases = []
    for probed in sets:
        for protocol in sorted(probed.ports):
            if protocol not in ("tcp", "udp", "sctp"):
                continue
            ranges = probed.port_set(protocol).ranges
            if ranges:
                within = " OR ".join(
                    f"ports.port = {low}" if low == high else f"ports.port BETWEEN {low} AND {high}"
                    for low, high in ranges
                )
                cases.append(
                    f"(hosts.seen_ports_id = {int(probed.pk)} AND ports.protocol = '{protocol}' AND ({within}))"
                )
    return f"({' OR '.join(cases)})" if cases else "FALSE"
