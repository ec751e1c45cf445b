"""Alert latency benchmark: from the change committed to the webhook received.

    make bench-alerts     (python -m tests.stack python -m bench.alerts)

Runs the production path with default settings: a delivery worker
(``manage.py run_worker --alerts``) and beat as separate processes on
PostgreSQL and Redis, a signed-webhook channel with the built-in alert rules,
and a real HTTP receiver in this process. Each of ``--count`` scans (the real
ingest, one transaction each, paced at ``--rate`` per second) discovers a
host with an open port; the time between its commit and the receiver reading
the notification is one sample. The anchor, measured in the same run, is a
direct POST of a same-sized body to the same receiver: the floor no alerting
path can beat. The goal from the issue is p95 under 2 s, nothing lost and
nothing twice. The last line reads

    alert_latency n=<k> p50_ms=<x> p95_ms=<y> lost=<z> duplicates=<w>

Observed addresses are in 127.0.0.0/8; nothing is scanned.
"""

import argparse
import json
import statistics
import time
import urllib.request

from bench.common import fresh_database, setup_django

DATABASE = "portwatch_bench_alerts"
GOAL_P95_MS = 2000.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def direct_posts(url: str, body: bytes, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our loopback receiver
            response.read()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300, help="notifications to send (default 300)")
    parser.add_argument("--rate", type=float, default=10.0, help="scans committed per second (default 10)")
    args = parser.parse_args()

    setup_django(fresh_database(DATABASE))
    from django.conf import settings
    from django.db import transaction

    from alerts.choices import ChannelKind
    from alerts.models import AlertRule, Channel, Notification
    from tests.factories import observe
    from tests.processes import BeatProcess, WorkerProcess
    from tests.receivers import WebhookReceiver

    receiver = WebhookReceiver()
    channel = Channel.objects.create(name="bench", kind=ChannelKind.WEBHOOK, target=receiver.url, allow_private=True)
    channel.rules.set(AlertRule.objects.filter(built_in=True))
    log_dir = settings.VAR_DIR / "bench-alerts"
    log_dir.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(log_dir / "alerts-worker.log", "--alerts")
    beat = BeatProcess(
        log_dir / "beat.log", "--loglevel", "WARNING", "--schedule", str(log_dir / "celerybeat-schedule")
    )
    committed: dict[str, float] = {}
    try:
        # Warm-up (imports, connections) is not measured.
        observe({"127.91.0.1": [22]})
        time.sleep(2)
        warm = set(receiver.keys())
        interval = 1.0 / args.rate
        started = time.perf_counter()
        for index in range(args.count):
            address = f"127.90.{index // 250}.{index % 250 + 1}"
            stamp: list[float] = []
            with transaction.atomic():
                # Runs first after COMMIT, before the outbox's own on-commit hook tells the broker.
                transaction.on_commit(lambda stamp=stamp: stamp.append(time.time()))
                run = observe({address: [8000 + index % 1000]})
            at = stamp[0]
            for key in Notification.objects.filter(chunk__run=run).values_list("public_id", flat=True):
                committed[str(key)] = at
            delay = started + (index + 1) * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        deadline = time.time() + 60
        while time.time() < deadline and not set(committed) <= set(receiver.keys()):
            time.sleep(0.2)
        time.sleep(1)  # late duplicates, if any, arrive too
    finally:
        worker.stop()
        beat.stop()
        receiver.stop()

    first_seen: dict[str, float] = {}
    received = [request for request in receiver.requests if request.key not in warm]
    for request in received:
        first_seen.setdefault(request.key, request.at)
    latencies = [(first_seen[key] - at) * 1000 for key, at in committed.items() if key in first_seen]
    lost = len(set(committed) - set(first_seen))
    duplicates = len(received) - len(first_seen)
    body = json.dumps(received[0].json() if received else {}).encode()
    anchor_receiver = WebhookReceiver()
    try:
        anchor = direct_posts(anchor_receiver.url, body, 100)
    finally:
        anchor_receiver.stop()

    p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
    print(f"notifications committed      {len(committed)} at {args.rate:g}/s (one scan transaction each)")
    print(f"received                     {len(first_seen)} ({lost} lost, {duplicates} duplicate deliveries)")
    print(f"commit -> webhook received   p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   max {max(latencies):8.1f} ms")
    print(
        f"anchor: direct POST          p50 {statistics.median(anchor):8.1f} ms   p95 {percentile(anchor, 0.95):8.1f} ms"
    )
    print(f"p95 / goal ({GOAL_P95_MS:.0f} ms)          {p95 / GOAL_P95_MS:.3f}")
    print(f"p50 / direct POST p50        {p50 / statistics.median(anchor):.1f}")
    print(f"alert_latency n={len(latencies)} p50_ms={p50:.1f} p95_ms={p95:.1f} lost={lost} duplicates={duplicates}")


if __name__ == "__main__":
    main()
