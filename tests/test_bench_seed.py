"""The page benchmark runs end to end at a small size: its seed writes every
column the migrations require today, and every page it times answers.

The seed writes rows with raw SQL, so a new NOT NULL column without a
database default breaks it without any other test noticing (fast discovery's
``masscan_options`` did: ``make bench-pages`` and ``make bench-load`` failed
at their first INSERT). The benchmark creates its own database next to the
tests' on the same server (``bench.common.fresh_database``).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_page_benchmark_runs_at_a_small_size():
    result = subprocess.run(
        [sys.executable, "-m", "bench.pages", "--hosts", "400", "--repeat", "1"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"pages hosts=400 services=(\d+) worst_p95_ms=[\d.]+ worst_page=\S+", last)
    assert match, last
    # ten ports a host, as the seed's docstring says
    assert int(match[1]) == 4000
    # every page was timed (a page that failed would have raised before the summary)
    timed = [line for line in result.stdout.splitlines() if re.search(r"p50 +[\d.]+ ms +p95", line)]
    assert len(timed) > 40, result.stdout[-3000:]
