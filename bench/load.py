"""Load benchmark: runql's real server (uvicorn, one process) on a loopback port, under wrk at
fixed request rates, stepping the rate up, with the fast path on and off side by side.

Workloads (GraphQL over HTTP, POST, with an API key):
- status:    one run's status, `query($id: ID!) { run(id: $id) { status } }`;
- feed20:    queries/feed.graphql at `first: 20`;
- feed100:   queries/feed.graphql at `first: 100`;
- createRun: a run of the echo agent (the server runs no executor: RUNQL_WORKERS=0).

For each executor (fast, standard) a fresh server starts on a copy of one demo database
(`--runs` runs). For each workload the rate starts at `--start` requests per second and grows
by `--factor` each step of `--seconds` seconds (the first step lasts `--first-seconds`, so that
the CPU figures of both executors at that rate rest on enough requests); a step holds when p99
latency is at most `--p99-ms` (50), wrk sent at least 95% of the rate and every answer was a
2xx without socket errors. Stepping stops at the first step that does not hold (after one retry, for
noise) or at `--max-rate`. Per workload the result is the highest rate that held, and the
server's CPU milliseconds per request at that rate (utime + stime of the server process from
/proc/<pid>/stat over the step, divided by the requests answered).

The last line printed is JSON: {"workloads": {name: {"fast": {...}, "standard": {...},
"rate_ratio": fast/standard max rates, "cpu_ratio": standard/fast CPU ms per request at
"cpu_compared_at" (the highest rate both held, else the first step)}}, "runs": ..., ...}.
createRun is a mutation, on the standard executor in both servers: its two figures show the
noise of the machine.

Needs wrk (Debian's package; `make bench` installs it) and the Lua script bench/load.lua.
Usage: python bench/load.py [--runs 1000] [--seconds 5] [--first-seconds 15] [--start 1]
       [--factor 1.5] [--max-rate 2000] [--only status,feed20] [--executors fast,standard]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "load.lua"
FEED = (ROOT / "queries" / "feed.graphql").read_text()
STATUS = "query Status($id: ID!) { run(id: $id) { status } }"
CREATE = ("mutation Create($agent: ID!) { createRun(input: {agentId: $agent, content: "
          '{text: "load test"}}) { run { id status } } }')
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SEED = 7
MIN_SENT = 0.95  # of the rate, for a step to hold
WRK_THREADS = 1
MAX_CONNECTIONS = 64
EXECUTORS = ("fast", "standard")
WORKLOADS = ("status", "feed20", "feed100", "createRun")


@dataclass(frozen=True)
class Step:
    rate: float
    sent_per_s: float
    requests: int
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    errors: int

    def holds(self, p99_ms: float) -> bool:
        return (self.p99_ms <= p99_ms and self.errors == 0
                and self.sent_per_s >= MIN_SENT * self.rate)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --------------------------------------------------------------------------------------------
# The database, its key, and the server.
# --------------------------------------------------------------------------------------------


async def _prepare(url: str, runs: int) -> str:
    """Demo data and an API key of its organization; the key's secret."""
    from runql.auth.keys import create_key
    from runql.demo import load_demo
    from runql.storage.database import Database

    database = Database.from_url(url)
    try:
        await load_demo(database, runs=runs, seed=SEED)
        return (await create_key(database, "load")).secret
    finally:
        await database.dispose()


def _environment(database: Path, executor: str) -> dict[str, str]:
    return {**os.environ, "RUNQL_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            "RUNQL_ENV": "production", "RUNQL_WORKERS": "0", "RUNQL_LOG_LEVEL": "warning",
            "RUNQL_RATE_LIMIT_PER_SECOND": "1000000", "RUNQL_RATE_LIMIT_BURST": "1000000",
            "RUNQL_FASTPATH": "1" if executor == "fast" else "0", "RUNQL_SERVE_WORKERS": "1"}


@contextmanager
def serving(database: Path, executor: str) -> Iterator[tuple[str, int]]:
    """A real `runql serve` on a loopback port (which freezes the garbage collector after
    start-up, as any served process does): its URL and process id."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "runql", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=_environment(database, executor), cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/graphql"
        _wait_until_up(url)
        yield url, server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start within 30 s")


def _post(url: str, key: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(url, json={"query": query, "variables": variables}, timeout=30,
                          headers={"Authorization": f"Bearer {key}"})
    body: dict[str, Any] = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"{query[:40]}…: {response.status_code} {body.get('errors')}")
    return body["data"]  # type: ignore[no-any-return]


def bodies(url: str, key: str) -> dict[str, bytes]:
    """Each workload's request body, checked once to answer without errors."""
    page = _post(url, key, "{ runs(first: 1) { edges { node { id } } } "
                 "agents(first: 100) { edges { node { id kind } } } }", {})
    run_id = page["runs"]["edges"][0]["node"]["id"]
    agent = next(edge["node"]["id"] for edge in page["agents"]["edges"]
                 if edge["node"]["kind"] == "echo")
    requests = {"status": (STATUS, {"id": run_id}), "feed20": (FEED, {"first": 20}),
                "feed100": (FEED, {"first": 100}), "createRun": (CREATE, {"agent": agent})}
    for query, variables in requests.values():
        _post(url, key, query, variables)
    return {name: orjson.dumps({"query": query, "variables": variables})
            for name, (query, variables) in requests.items()}


# --------------------------------------------------------------------------------------------
# wrk at a rate.
# --------------------------------------------------------------------------------------------


def connections(rate: float) -> int:
    """Enough for 100 ms per request at the rate, and no more: a connection idle for 5 s is
    closed by uvicorn, and wrk would count the race of that close with a request as an error."""
    return min(MAX_CONNECTIONS, max(2, math.ceil(rate / 10)))


def wrk(url: str, key: str, body: Path, rate: float, seconds: float, pid: int) -> Step:
    env = {**os.environ, "RUNQL_LOAD_BODY": str(body), "RUNQL_LOAD_KEY": key,
           "RUNQL_LOAD_RATE": str(rate), "RUNQL_LOAD_THREADS": str(WRK_THREADS)}
    command = ["wrk", "-t", str(WRK_THREADS), "-c", str(connections(rate)), "-d",
               f"{seconds:g}s", "--timeout", "10s", "-s", str(LUA), url]
    cpu_before = _cpu_seconds(pid)
    finished = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=seconds + 60, check=True)
    cpu = _cpu_seconds(pid) - cpu_before
    report = orjson.loads(finished.stdout.strip().splitlines()[-1])
    requests = int(report["requests"])
    return Step(
        rate=rate,
        sent_per_s=round(requests / (report["duration_us"] / 1e6), 1),
        requests=requests,
        p50_ms=round(report["p50_us"] / 1000, 2),
        p99_ms=round(report["p99_us"] / 1000, 2),
        cpu_ms_per_request=round(cpu * 1000 / max(requests, 1), 3),
        errors=sum(int(report[kind]) for kind in ("connect", "read", "write", "timeout",
                                                   "non_2xx")),
    )


def _rates(args: argparse.Namespace) -> Iterator[float]:
    rate, last = args.start, 0.0
    while rate <= args.max_rate:
        rounded = round(rate, 1) if rate < 10 else float(round(rate))
        if rounded != last:
            yield rounded
        rate, last = rate * args.factor, rounded


def _drain(pid: int, seconds: float = 60) -> None:
    """Wait for the server to finish what an overload left queued: until it idles (under 10%
    of a core over half a second), for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = _cpu_seconds(pid)
        time.sleep(0.5)
        if _cpu_seconds(pid) - before < 0.05:
            return


def step_up(url: str, key: str, body: Path, pid: int, args: argparse.Namespace,
            name: str) -> dict[str, Any]:
    """The highest rate that held, with its figures, and every step taken."""
    wrk(url, key, body, args.start, 2, pid)  # warm-up: plans, caches, connections
    _drain(pid)
    held: Step | None = None
    steps: list[dict[str, Any]] = []
    for index, rate in enumerate(_rates(args)):
        # The first step is longer: its CPU figures compare the executors at the same rate.
        seconds = max(args.seconds, args.first_seconds) if index == 0 else args.seconds
        step = wrk(url, key, body, rate, seconds, pid)
        if not step.holds(args.p99_ms):  # noise on a shared machine: one more try
            step = wrk(url, key, body, rate, seconds, pid)
        steps.append(asdict(step))
        print(f"  {name:<10} {rate:>7g}/s: sent {step.sent_per_s:>7.1f}/s, p50 "
              f"{step.p50_ms:>7.2f} ms, p99 {step.p99_ms:>8.2f} ms, CPU "
              f"{step.cpu_ms_per_request:>7.3f} ms/request, errors {step.errors}"
              f"{'' if step.holds(args.p99_ms) else '  <- does not hold'}", flush=True)
        if not step.holds(args.p99_ms):
            break
        held = step
    _drain(pid)  # the next workload starts on an idle server
    return {"max_rate": held.rate if held else 0,
            "cpu_ms_per_request": held.cpu_ms_per_request if held else None,
            "p99_ms": held.p99_ms if held else None, "steps": steps}


def run(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        sys.exit("load.py needs wrk: `make bench` installs it (apt-get install wrk)")
    from runql.storage.migrate import upgrade

    workdir = Path(tempfile.mkdtemp(prefix="runql-load-"))
    try:
        template = workdir / "template.db"
        upgrade(f"sqlite+aiosqlite:///{template}")
        key = asyncio.run(_prepare(f"sqlite+aiosqlite:///{template}", args.runs))
        results: dict[str, dict[str, Any]] = {name: {} for name in args.only}
        for executor in args.executors:
            database = workdir / f"{executor}.db"
            shutil.copy(template, database)
            with serving(database, executor) as (url, pid):
                print(f"{executor} executor: server pid {pid}", flush=True)
                for name, body in bodies(url, key).items():
                    if name not in args.only:
                        continue
                    path = workdir / f"{name}.json"
                    path.write_bytes(body)
                    results[name][executor] = step_up(url, key, path, pid, args, name)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return summary(results, args)


def _compared(fast: list[dict[str, Any]], standard: list[dict[str, Any]],
              p99_ms: float) -> tuple[float, float, float] | None:
    """CPU ms per request of both at one rate: the highest both held, else the first step."""
    def held(steps: list[dict[str, Any]]) -> dict[float, float]:
        return {step["rate"]: step["cpu_ms_per_request"] for step in steps
                if Step(**step).holds(p99_ms)}

    both = held(fast).keys() & held(standard).keys()
    if both:
        rate = max(both)
        return rate, held(fast)[rate], held(standard)[rate]
    if fast and standard and fast[0]["rate"] == standard[0]["rate"]:
        return fast[0]["rate"], fast[0]["cpu_ms_per_request"], standard[0]["cpu_ms_per_request"]
    return None


def summary(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    workloads: dict[str, Any] = {}
    for name, by_executor in results.items():
        brief: dict[str, Any] = {
            executor: {key: found[key] for key in ("max_rate", "cpu_ms_per_request", "p99_ms")}
            for executor, found in by_executor.items()}
        if "fast" in by_executor and "standard" in by_executor:
            fast, standard = brief["fast"], brief["standard"]
            if standard["max_rate"]:
                brief["rate_ratio"] = round(fast["max_rate"] / standard["max_rate"], 2)
            compared = _compared(by_executor["fast"]["steps"], by_executor["standard"]["steps"],
                                 args.p99_ms)
            if compared is not None and compared[1] > 0:
                rate, fast_cpu, standard_cpu = compared
                brief["cpu_compared_at"] = rate
                brief["cpu_ratio"] = round(standard_cpu / fast_cpu, 2)
        workloads[name] = brief
    print(f"{'workload':<10} {'executor':<9} {'max rate/s':>10} {'CPU ms/req':>10} "
          f"{'p99 ms':>8}")
    for name, brief in workloads.items():
        for executor in args.executors:
            found = brief.get(executor)
            if found:
                print(f"{name:<10} {executor:<9} {found['max_rate']:>10} "
                      f"{found['cpu_ms_per_request'] or 0:>10.3f} {found['p99_ms'] or 0:>8.2f}")
    return {"workloads": workloads, "runs": args.runs, "seconds_per_step": args.seconds,
            "p99_limit_ms": args.p99_ms, "max_connections": MAX_CONNECTIONS}


def _names(allowed: Sequence[str]) -> Any:
    def parse(value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - set(allowed))
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return names

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1000, help="demo runs (default 1000)")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="seconds per step (default 5)")
    parser.add_argument("--first-seconds", type=float, default=15.0,
                        help="seconds of the first step, whose CPU figures compare the "
                        "executors at one rate (default 15)")
    parser.add_argument("--start", type=float, default=1.0,
                        help="first rate, requests/s (default 1)")
    parser.add_argument("--factor", type=float, default=1.5,
                        help="each step's rate over the last one's (default 1.5)")
    parser.add_argument("--max-rate", type=float, default=2000.0,
                        help="highest rate tried (default 2000)")
    parser.add_argument("--p99-ms", type=float, default=50.0,
                        help="p99 latency a rate must hold (default 50)")
    parser.add_argument("--only", type=_names(WORKLOADS), default=list(WORKLOADS),
                        help=f"workloads, comma-separated (default {','.join(WORKLOADS)})")
    parser.add_argument("--executors", type=_names(EXECUTORS), default=list(EXECUTORS),
                        help="fast, standard or both (default both)")
    args = parser.parse_args(argv)
    if args.factor <= 1 or args.start <= 0 or args.seconds <= 0:
        parser.error("--factor must exceed 1; --start and --seconds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    report = run(parse_args(argv))
    print(orjson.dumps(report).decode())


if __name__ == "__main__":
    main()
