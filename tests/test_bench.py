"""bench/feed.py runs end to end on a small database and reports its figures as JSON."""

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("graphql_ms", "floor_ms", "ratio", "naive_ms", "statements")


def test_feed_benchmark_reports_its_figures() -> None:
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "feed.py"), "--runs", "60", "--repeat", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    elapsed = time.monotonic() - started
    assert finished.returncode == 0, finished.stderr[-4000:] or finished.stdout[-4000:]

    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert tuple(report)[: len(KEYS)] == KEYS
    for key in KEYS:
        value = report[key]
        assert not isinstance(value, bool), (key, value)
        assert isinstance(value, int | float), (key, value)
        assert value > 0, (key, value)
    assert isinstance(report["statements"], int)
    assert report["statements"] <= 12
    # ratio is of the unrounded medians, so allow for the rounding of the two shown.
    assert abs(report["ratio"] - report["graphql_ms"] / report["floor_ms"]) < 0.02
    assert report["runs"] == 60
    assert elapsed < 20, f"the benchmark took {elapsed:.1f}s"
