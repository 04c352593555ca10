"""bench/feed.py runs end to end on a small database and reports its figures as JSON."""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench import stream as stream_bench
from bench.serve import Measured, Step, cpu_seconds, stopped

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("graphql_ms", "floor_ms", "ratio", "naive_ms", "statements")


def _report(script: str, *arguments: str, timeout: float) -> dict[str, Any]:
    """What bench/SCRIPT ARGUMENTS reports on its last line, once it has run to the end."""
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-4000:] or finished.stdout[-4000:]
    report: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return report


def test_feed_benchmark_reports_its_figures() -> None:
    started = time.monotonic()
    report = _report("feed.py", "--runs", "60", "--repeat", "2", timeout=60)
    elapsed = time.monotonic() - started
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


def _step(rate: float, achieved: float, p99_ms: float) -> Step:
    return Step(rate, achieved, 1.0, p99_ms, 0, 0.1, None, 0.01)


def test_a_peak_no_step_saturated_at_is_reported_as_a_bound() -> None:
    """A server that kept up with every rate offered has a peak of at least the last rate,
    not that rate: `peak_found` says which the figure is."""
    capped = Measured(0.5, [_step(100, 100, 2.0), _step(200, 199.5, 3.0)])
    found = Measured(0.5, [_step(100, 100, 2.0), _step(200, 150, 400.0)])
    assert capped.figures(50, 100)["peak_found"] is False
    assert capped.figures(50, 100)["peak_rps"] == 199.5
    assert found.figures(50, 100)["peak_found"] is True
    assert found.figures(50, 100)["peak_rps"] == 100


def test_serve_benchmark_checks_bodies_and_reports_its_figures() -> None:
    """bench/serve.py --quick on SQLite: both servers answered byte-identical bodies before any
    timing, and the last line holds each workload's figures and runql / floor ratios."""
    report = _report(
        "serve.py", "--quick", "--database", "sqlite", "--only", "run-by-id,feed20", timeout=240
    )
    assert list(report["databases"]) == ["sqlite"]
    sqlite = report["databases"]["sqlite"]
    assert sqlite["identical_bodies"] == {"run-by-id": 20, "feed20": 1}
    assert list(sqlite["workloads"]) == ["run-by-id", "feed20"]
    for figures in sqlite["workloads"].values():
        for server in ("runql", "floor"):
            found = figures[server]
            assert found["peak_rps"] > 0, (server, found)
            # /proc counts CPU in ticks of 10 ms: a short step of the floor may read 0.
            assert found["server_cpu_ms"] >= 0, (server, found)
            assert found["serial_p50_ms"] > 0, (server, found)
            assert found["database_cpu_ms"] is None  # SQLite runs inside the server
            assert figures["steps"][server]  # one step at --start, or lower if it saturated
        ratio = figures["ratio"]
        assert ratio["peak_rps"] == round(
            figures["runql"]["peak_rps"] / figures["floor"]["peak_rps"], 3
        )
        if figures["floor"]["server_cpu_ms"]:
            assert ratio["server_cpu_ms"] == round(
                figures["runql"]["server_cpu_ms"] / figures["floor"]["server_cpu_ms"], 3
            )
        assert figures["generator_ceiling_rps"] > 0
    assert report["loadavg_before"]
    assert report["loadavg_after"]


def test_fixed_work_diagnostic_times_runql_with_a_constant_read() -> None:
    """bench/fixedwork.py --quick: runql's read answered the constant (and the floor's did
    not) before any timing, and the report holds both servers' figures and their ratios."""
    report = _report(
        "fixedwork.py", "--quick", "--database", "sqlite", "--only", "run-by-id", timeout=240
    )
    sqlite = report["databases"]["sqlite"]
    assert sqlite["constant_answers"] == {"run-by-id": 20}
    assert "identical_bodies" not in sqlite
    figures = sqlite["workloads"]["run-by-id"]
    for server in ("runql", "floor"):
        assert figures[server]["peak_rps"] > 0, (server, figures[server])
    assert figures["ratio"]["peak_rps"] > 0


def test_serve_benchmark_alternates_the_servers_rate_by_rate() -> None:
    """--alternate: both servers up at once, each rate timed on one then the other, and the
    same figures reported as when they run one after the other."""
    finished = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "serve.py"),
            *("--alternate", "--database", "sqlite", "--only", "run-by-id", "--runs", "100"),
            *("--seconds", "0.5", "--serial", "5", "--warmup", "3"),
            *("--start", "20", "--factor", "2", "--max-rate", "40"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-4000:]
    steps = [
        line.split()[2:4]  # "sqlite run-by-id SERVER RATE/s: ..."
        for line in finished.stdout.splitlines()
        if line.startswith("  sqlite run-by-id ")
    ]
    assert steps == [["runql", "20/s:"], ["floor", "20/s:"], ["runql", "40/s:"], ["floor", "40/s:"]]
    figures = json.loads(finished.stdout.strip().splitlines()[-1])["databases"]["sqlite"]
    assert figures["identical_bodies"] == {"run-by-id": 20}
    run_by_id = figures["workloads"]["run-by-id"]
    for server in ("runql", "floor"):
        assert [step["rate"] for step in run_by_id["steps"][server]] == [20.0, 40.0]
        assert run_by_id[server]["peak_rps"] > 0, (server, run_by_id[server])
    assert run_by_id["ratio"]["peak_rps"] == round(
        run_by_id["runql"]["peak_rps"] / run_by_id["floor"]["peak_rps"], 3
    )


def test_a_stopped_server_takes_no_turn_on_the_core() -> None:
    """bench/serve.py's `stopped`: a busy process uses no CPU while stopped, and runs again
    after."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        with stopped([busy.pid]):
            time.sleep(0.05)  # the signal is delivered
            before = cpu_seconds(busy.pid)
            time.sleep(0.5)
            assert cpu_seconds(busy.pid) == before
            assert Path(f"/proc/{busy.pid}/stat").read_text().rpartition(")")[2].split()[0] == "T"
        before = cpu_seconds(busy.pid)
        time.sleep(0.5)
        assert cpu_seconds(busy.pid) > before
    finally:
        busy.kill()
        busy.wait()


def test_serve_benchmark_runs_both_servers_on_granian() -> None:
    """--server granian: runql (its app factory on granian) and the floor (on granian too)
    answer byte-identical bodies, and the report says which server they ran on."""
    report = _report(
        "serve.py",
        *("--quick", "--database", "sqlite", "--only", "run-by-id", "--server", "granian"),
        timeout=240,
    )
    assert report["server"]["name"] == "granian"
    assert report["server"]["version"].startswith("2.")
    sqlite = report["databases"]["sqlite"]
    assert sqlite["identical_bodies"] == {"run-by-id": 20}
    figures = sqlite["workloads"]["run-by-id"]
    for server in ("runql", "floor"):
        assert figures[server]["peak_rps"] > 0, (server, figures[server])
        assert figures[server]["serial_p50_ms"] > 0, (server, figures[server])


def test_server_cpu_counts_the_processes_it_started() -> None:
    """A server's CPU is its process tree's (granian serves from a child process): a parent
    that only waits while its child spins for 0.5 s of CPU has used about 0.5 s."""
    child = (
        "import sys, time\nend = time.process_time() + 0.5\n"
        "while time.process_time() < end: pass\nsys.stdin.read()"
    )
    parent = subprocess.Popen(  # the child inherits the pipe: it stays until the pipe closes
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])",
        ],
        stdin=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while cpu_seconds(parent.pid) < 0.45 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cpu_seconds(parent.pid) >= 0.45
    finally:
        parent.communicate(b"", timeout=10)


BENCH_ON_CORE_1 = "this benchmark (load generator and model server) on core 1"


def test_stream_benchmark_places_gateway_i_on_core_i() -> None:
    """Two gateways on two cores: one each, the second beside the load generator (said so)."""
    if not {0, 1} <= stream_bench.CORES:
        pytest.skip("placement pins gateways on cores 0 and 1")
    assert stream_bench.placement(1) == f"gateway 1 on core 0; {BENCH_ON_CORE_1}"
    assert stream_bench.placement(2) == (
        f"gateway 1 on core 0, gateway 2 on core 1; {BENCH_ON_CORE_1}, shared with gateway 2"
    )


def test_stream_benchmark_follows_streamed_runs_exactly() -> None:
    """bench/stream.py in a tiny mode on SQLite: every token reached every socket, the deltas
    concatenate to the model server's text with no gap or duplicate, and the last line holds
    the latency, commit and CPU figures."""
    report = _report(
        "stream.py",
        *("--database", "sqlite", "--runs", "2", "--subscribers", "2", "--tokens", "20"),
        timeout=120,
    )
    assert (report["runs"], report["subscribers_per_run"], report["tokens"]) == (2, 2, 20)
    [sqlite] = report["results"]
    assert (sqlite["database"], sqlite["processes"]) == ("sqlite", 1)
    assert sqlite["placement"] in ("unpinned", f"gateway 1 on core 0; {BENCH_ON_CORE_1}")
    assert sqlite["exact"] is True
    assert sqlite["tokens_received"] == sqlite["tokens_expected"] == 2 * 2 * 20
    assert 0 < sqlite["p50_ms"] <= sqlite["p99_ms"] <= sqlite["max_ms"]
    assert sqlite["deltas_delivered"] > 0
    assert sqlite["commits_per_s"] is None  # SQLite keeps no count of commits
    assert sqlite["server_cpu_ms_per_delta"] >= 0
    assert sqlite["bench_cpu_share"] > 0  # the sockets and the model server cost it something
    assert sqlite["core_speed_ms"] > 0  # the speed probe ran before the gateway
    assert report["loadavg_before"]
    assert report["loadavg_after"]


def test_delivery_benchmark_counts_every_frame_it_wrote() -> None:
    """bench/delivery.py in a tiny mode: every event the bench wrote reached every socket once,
    and the last line holds the frame count and the CPU per frame."""
    report = _report(
        "delivery.py", "--runs", "2", "--subscribers", "2", "--events", "5", timeout=120
    )
    assert report["exact"] is True
    assert report["frames"] == report["frames_expected"] == 2 * 2 * 5
    assert report["server_cpu_us_per_frame"] >= 0
