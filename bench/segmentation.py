"""Segmentation benchmark: keeping the violations exact on a large inventory, and their pages.

    python -m tests.stack python -m bench.segmentation --hosts 100000

Seeds a fresh PostgreSQL database (``bench.seed``: ten ports a host, so
100,000 hosts give 1M services), gives office-lan a view of half the
hosts' open ports and dc1-app of a tenth (PortView rows, as its scans would
write them), then times what ``reach.segmentation`` does:

- saving rules: three "only from dc1-app" rules on the database ports of a
  tag on 5 % of the hosts, "nothing in dc1 from office-lan" (every port of a
  zone, the widest reach) and its "except 443";
- a scan batch settling (``settle_batch`` over the changes a batch of 500
  and 16,000 hosts recorded from office-lan: 2 % of their open ports);
- an expiry, and a full re-check of every exposure (what the tests use to
  prove the table exact; not something the product runs);
- the segmentation pages (rules, violations first and deep page, a rule's page).

The last line reads ``segmentation hosts=<n> services=<m> violations=<v> worst_rule_s=<x> batch500_ms=<y>``.
Seeded addresses lie in 127.0.0.0/8 and are never scanned.
"""

import argparse
import os
import statistics
import sys
import time

from bench.views_seed import make_rule, seeded

DATABASE = "portwatch_bench_segmentation"


def timed(label: str, action):
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    print(f"  {label}: {seconds * 1000:,.0f} ms", flush=True)
    return seconds, result


def prepare(hosts: int):
    views = seeded(DATABASE, hosts, {"office-lan": 2, "dc1-app": 10})
    return views["office-lan"], views["dc1-app"]


def batch(vantage, size: int):
    """What settling a scan's batch of ``size`` hosts costs: a run, its chunk and the changes its
    batch recorded (2 % of the open ports seen from ``vantage``: one in two seen open again, the
    others closed there), then ``settle_batch`` as the ingest calls it. Rolled back."""
    from django.db import connection, transaction

    from inventory.models import Host, Zone
    from reach import segmentation
    from scans.models import ScanChunk, ScanRun

    dc1 = Zone.objects.get(name="dc1")
    with transaction.atomic():
        run = ScanRun.objects.create(zone=dc1, vantage=vantage, trigger="import", status="succeeded")
        chunk = ScanChunk.objects.create(run=run, index=0, status="succeeded", attempts=1)
        ids = list(Host.objects.filter(zone=dc1).order_by("pk").values_list("pk", flat=True)[:size])
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE bench_moved ON COMMIT DROP AS SELECT id, host_id, protocol, port, "
                "((id / 50) %% 2 = 0) AS closed FROM reach_portview WHERE vantage_id = %s AND state = 'open' "
                "AND host_id = ANY(%s) AND id %% 50 = 0",
                [vantage.pk, ids],
            )
            cursor.execute(
                "UPDATE reach_portview SET state = 'closed' WHERE id IN (SELECT id FROM bench_moved WHERE closed)"
            )
            cursor.execute(
                "INSERT INTO scans_change (public_id, run_id, chunk_id, vantage_id, host_id, kind, protocol, port, "
                "flapping, created_at) SELECT gen_random_uuid(), %s, %s, %s, host_id, "
                "CASE WHEN closed THEN 'exposure_closed' ELSE 'exposure_opened' END, protocol, port, FALSE, now() "
                "FROM bench_moved",
                [run.pk, chunk.pk, vantage.pk],
            )
        changes = chunk.changes.count()
        started = time.perf_counter()
        outcome = segmentation.settle_batch(chunk, chunk.changes.all())
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    return seconds, changes, outcome


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    office, app = prepare(args.hosts)

    from django.db import connection, transaction
    from django.db.models import Q
    from django.utils import timezone

    from inventory.models import Service, Tag, Zone
    from reach import segmentation
    from reach.models import PortView, SegmentationViolation

    services, views = Service.objects.count(), PortView.objects.count()
    print(f"segmentation at {args.hosts:,} hosts, {services:,} services, {views:,} views from elsewhere", flush=True)
    dc1, tag = Zone.objects.get(name="dc1"), Tag.objects.get(name="tag-3")
    rules = {}
    print("saving rules (each evaluates its reach, records its changes and announces them):")
    for port in (5432, 3306, 6379):
        seconds, (rules[f"only {port}"], outcome) = timed(
            f"tag-3 {port}/tcp only from dc1-app",
            lambda port=port: make_rule("only", [app], port, port, scope="tag", tag=tag),
        )
    seconds_wide, (wide, outcome) = timed(
        "zone dc1 1-65535/any not from office-lan",
        lambda: make_rule("deny", [office], 1, 65535, protocol="any", scope="zone", zone=dc1),
    )
    print(f"    {outcome.violated:,} violations began")
    seconds_except, (_, outcome) = timed(
        "zone dc1 443/tcp may be from office-lan",
        lambda: make_rule("allow", [office], 443, 443, scope="zone", zone=dc1),
    )
    print(f"    {outcome.kept:,} violations ended")
    violations = SegmentationViolation.objects.count()
    print(f"  {violations:,} violations now")
    # As autovacuum would have by the next scan: the planner sees the violations.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reach_segmentationviolation")

    print("a scan batch settling (settle_batch over the batch's changes, from office-lan):")
    batch_ms = {}
    for size in (500, 16_000):
        seconds, changes, outcome = batch(office, size)
        print(f"  {size:,} hosts, {changes:,} changes: {seconds * 1000:,.0f} ms ({dict(outcome)})")
        batch_ms[size] = seconds * 1000
    print("expiry and the full check:")
    # The clock reaches its expiry (an update: a save would apply the expiry itself).
    type(wide).objects.filter(pk=wide.pk).update(expires_at=timezone.now())
    seconds_expiry, _ = timed("the wide rule expires", segmentation.expire)
    print(f"    {SegmentationViolation.objects.count():,} violations after it")

    def full_check():
        with transaction.atomic():
            return segmentation.reconcile(Q())

    seconds_full, outcome = timed("every exposure re-checked", full_check)
    assert (outcome.violated, outcome.kept) == (0, 0), outcome

    print(f"pages ({args.repeat} requests each):")
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.test import Client, override_settings
    from django.urls import reverse

    from portwatch.roles import GROUP_NAMES, Role

    viewer, _ = User.objects.get_or_create(username="bench-viewer")
    viewer.groups.add(Group.objects.get(name=GROUP_NAMES[Role.VIEWER]))
    client = Client()
    client.force_login(viewer)
    # Static URLs without the collectstatic manifest (the pages are what is timed).
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    static = override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain})
    static.enable()
    listing = reverse("segmentation-violation-list")
    from inventory import paging
    from reach.segmentation_views import violations_shown

    cursor = paging.page_of(violations_shown(), None, 50).next_cursor
    urls = [
        ("rules", reverse("segmentation-rule-list")),
        ("violations", listing),
        ("violations page 2", f"{listing}?cursor={cursor}" if cursor else listing),
        ("violations from office-lan", f"{listing}?vantage=office-lan"),
        ("a rule's page", rules["only 5432"].get_absolute_url()),
    ]
    worst = 0.0
    for name, url in urls:
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
        worst = max(worst, p95)
        print(f"  {name}: p50 {statistics.median(times):.0f} ms, p95 {p95:.0f} ms")

    worst_rule = max(seconds_wide, seconds_except)
    print(
        f"segmentation hosts={args.hosts} services={services} violations={violations} "
        f"worst_rule_s={worst_rule:.2f} batch500_ms={batch_ms[500]:.0f} "
        f"batch16k_ms={batch_ms[16_000]:.0f} expiry_s={seconds_expiry:.2f} "
        f"full_check_s={seconds_full:.2f} worst_page_p95_ms={worst:.0f}"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portwatch.settings")
    sys.exit(main())
