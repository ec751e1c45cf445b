"""The ingest benchmark runs end to end at a small size: its two synthetic
scans are imported, ndiff diffs them, the changes match, and every figure it
prints is there (the parse floor beside the ratios). Nothing is timed here:
the figures are the benchmark's to print, not the tests' to judge.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ingest_benchmark_runs_at_a_small_size_and_prints_its_floor():
    result = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--sizes", "512"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    last = r"ingest_vs_ndiff hosts=512 time_ratio=[\d.]+ cpu_ratio=(?:[\d.]+|n/a) memory_ratio=[\d.]+ changes_match=yes"
    assert re.fullmatch(last, lines[-1]), lines[-1]
    # 2% of 5,120 open ports moved: each closed at its old port and opened at its new one, as ndiff says.
    assert any(re.search(r"opened 102 closed 102 vs ndiff \+102 -102 \(match\)", line) for line in lines), lines
    floor = next(line for line in lines if "parse_floor:" in line)
    assert re.search(r"reading scan 2 alone [\d.]+ s CPU \(ratio [\d.]+\), the bare ElementTree parse [\d.]+ s", floor)
