"""The benchmarks run end to end at a small size. Nothing is timed here: the
figures are the benchmarks' to print, not the tests' to judge.

Those that seed their own inventory: their seeds write every column the
migrations require today, and every page they time answers.

The seeds write rows with raw SQL, so a new NOT NULL column without a
database default breaks them without any other test noticing (fast
discovery's ``masscan_options`` did: ``make bench-pages`` and ``make
bench-load`` failed at their first INSERT). Each benchmark creates its own
database next to the tests' on the same server (``bench.common.fresh_database``).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_page_benchmark_runs_at_a_small_size():
    output = run_benchmark("pages", "--hosts", "400", "--repeat", "1")
    last = output.strip().splitlines()[-1]
    match = re.fullmatch(r"pages hosts=400 services=(\d+) worst_p95_ms=[\d.]+ worst_page=\S+", last)
    assert match, last
    # ten ports a host, as the seed's docstring says
    assert int(match[1]) == 4000
    # every page was timed (a page that failed would have raised before the summary)
    timed = [line for line in output.splitlines() if re.search(r"p50 +[\d.]+ ms +p95", line)]
    assert len(timed) > 40, output[-3000:]


@pytest.mark.parametrize(
    ("name", "last_line"),
    [
        ("matrix", r"matrix hosts=500 vantages=\d+ worst_p95_ms=[\d.]+ .*ratio=[\d.]+"),
        ("segmentation", r"segmentation hosts=500 services=5000 violations=[1-9]\d* .*worst_page_p95_ms=[\d.]+"),
        ("listeners", r"listeners report_sockets=\d+ .*hosts=500 reconcile_s=[\d.]+ ratio=[\d.]+ .*"),
    ],
)
def test_benchmarks_with_their_own_seed_run_at_a_small_size(name, last_line):
    output = run_benchmark(name, "--hosts", "500", "--repeat", "1")
    last = output.strip().splitlines()[-1]
    assert re.fullmatch(last_line, last), last


def test_ingest_benchmark_runs_at_a_small_size_and_prints_its_floor():
    """Its two synthetic scans are imported, ndiff diffs them, the changes match, the parse floor is printed."""
    lines = run_benchmark("ingest", "--sizes", "512").strip().splitlines()
    last = r"ingest_vs_ndiff hosts=512 time_ratio=[\d.]+ cpu_ratio=(?:[\d.]+|n/a) memory_ratio=[\d.]+ changes_match=yes"
    assert re.fullmatch(last, lines[-1]), lines[-1]
    # 2% of 5,120 open ports moved: each closed at its old port and opened at its new one, as ndiff says.
    assert any(re.search(r"opened 102 closed 102 vs ndiff \+102 -102 \(match\)", line) for line in lines), lines
    floor = next(line for line in lines if "parse_floor:" in line)
    assert re.search(r"reading scan 2 alone [\d.]+ s CPU \(ratio [\d.]+\), the bare ElementTree parse [\d.]+ s", floor)
