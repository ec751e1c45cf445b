"""A seeded inventory seen from vantage points: what bench.segmentation and bench.matrix start from.

``bench.seed`` writes the inventory (ten ports a host); each vantage point
named here gets a view of the open ports of every n-th host (PortView rows,
as its scans would write them), inserted in SQL with the triggers running.
Seeded addresses lie in 127.0.0.0/8 and are never scanned.
"""

import time

from bench.common import fresh_database, setup_django


def seeded(database: str, hosts: int, views: dict[str, int]) -> dict:
    """A fresh database ``database`` with ``hosts`` hosts, the zones' homes, and {name: every n-th host} views."""
    setup_django(fresh_database(database), DEBUG="false", ALLOWED_HOSTS="testserver")
    from django.db import connection

    from bench.seed import seed
    from inventory.models import Zone
    from reach.models import VantagePoint, ensure_home

    started = time.perf_counter()
    seed(hosts, verbose=False)
    for zone in Zone.objects.all():  # the seed writes zones in SQL: no signal gave them their home
        ensure_home(zone)
    vantages = {}
    with connection.cursor() as cursor:
        for name, modulo in views.items():
            vantage = vantages[name] = VantagePoint.objects.create(name=name)
            cursor.execute(
                "INSERT INTO reach_portview (host_id, vantage_id, protocol, port, state, name, stale, first_seen, "
                "last_seen, last_changed) SELECT host_id, %s, protocol, port, state, name, FALSE, first_seen, "
                "last_seen, last_changed FROM inventory_service WHERE state = 'open' AND host_id %% %s = 0",
                [vantage.pk, modulo],
            )
        cursor.execute("ANALYZE reach_portview")
    print(f"seeded {hosts:,} hosts and the views in {time.perf_counter() - started:.0f} s", flush=True)
    return vantages


def make_rule(mode, vantages, start, end, *, protocol="tcp", **scope):
    """A segmentation rule saved as the pages save one (its reach evaluated at once): (rule, outcome)."""
    from django.db import transaction

    from reach import segmentation
    from reach.models import SegmentationRule

    with transaction.atomic():
        rule = SegmentationRule.objects.create(
            mode=mode, protocol=protocol, port_start=start, port_end=end, justification="bench", **scope
        )
        rule.vantage_points.set(vantages)
        outcome = segmentation.rule_changed(None, rule)
    return rule, outcome
