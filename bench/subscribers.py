"""Benchmark of live fan-out: K websocket subscribers to one run on one server process.

A real `runql serve` (no workers) listens on a loopback port; this process opens K sockets
(graphql-transport-ws, the `websockets` library), each subscribed to `runEvents` of the same
run, then cancels the run through GraphQL. For every socket it takes the time from the event's
`createdAt` (stamped in the committing transaction, just before the commit: the figure is a
little pessimistic) to the arrival of that event, and it reads the server's resident memory
before and after the sockets are open.

Subscribers of one operation share one execution (runql.fanout); the same levels up to 1,000
are measured again on a server with RUNQL_WS_SHARED_STREAMS=0, where each subscriber runs its
own (the naive way), and the ratio of the p99s is given.

While it measures, this client only stamps and keeps the bytes that arrive, parsing them
afterwards, and its garbage collector is off: otherwise its own backlog would be measured.

The last line is JSON: {"levels": [{"subscribers": K, "min_ms": ..., "p50_ms": ...,
"p99_ms": ..., "max_ms": ..., "received": K, "server_kib_per_socket": ...}, ...],
"per_subscriber": [...], "per_subscriber_p99_over_shared": {"K": ratio}}

Usage: python bench/subscribers.py [--levels 1,100,1000,5000] [--per-subscriber-levels 1,100]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.wsclient import Subscriber, Window, open_subscriber

ROOT = Path(__file__).resolve().parent.parent
CREATE_AGENT = """mutation { createAgent(input: {name: "Echo", kind: "echo"}) { agent { id } } }"""
CREATE_RUN = """mutation($a: ID!) { createRun(input: {agentId: $a, content: {text: "fan-out"}})
  { run { id } } }"""
CANCEL_RUN = "mutation($id: ID!) { cancelRun(id: $id) { run { status } } }"
RUN_EVENTS = (
    "subscription($id: ID!, $after: Int) { runEvents(runId: $id, after: $after) { seq createdAt } }"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _raise_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _delay_ms(arrived: float, stamp: str) -> float:
    created = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return (arrived - created) * 1000


async def _quiet(pid: int, within: float) -> None:
    """Until the server process has been idle (under 5 ms of CPU in 200 ms), at most `within` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        before = _cpu_ms(pid)
        await asyncio.sleep(0.2)
        if _cpu_ms(pid) - before < 5:
            return


class Bench:
    def __init__(self, host: str, port: int, key: str, pid: int) -> None:
        self.http = httpx.AsyncClient(
            base_url=f"http://{host}:{port}", timeout=60, headers={"Authorization": f"Bearer {key}"}
        )
        self.host, self.port = host, port
        self.key = key
        self.pid = pid
        self.sockets: list[Subscriber] = []

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = (
            await self.http.post("/graphql", json={"query": query, "variables": variables or {}})
        ).json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]  # type: ignore[no-any-return]

    async def grow_to(self, count: int) -> None:
        while len(self.sockets) < count:
            batch = min(200, count - len(self.sockets))
            self.sockets += await asyncio.gather(
                *(open_subscriber(self.host, self.port, self.key) for _ in range(batch))
            )

    async def level(self, count: int, agent: str) -> dict[str, Any]:
        await self.grow_to(count)
        run_id = (await self.gql(CREATE_RUN, {"a": agent}))["createRun"]["run"]["id"]
        for subscriber in self.sockets:
            subscriber.subscribe(run_id, RUN_EVENTS, {"id": run_id, "after": 1})
        await _quiet(self.pid, within=60)  # every subscription is live before the change
        window = Window(len(self.sockets))
        for subscriber in self.sockets:
            subscriber.open_window(window)
        gc.collect()
        gc.disable()  # this client's collections would delay its stamps
        cpu_before, client_before = _cpu_ms(self.pid), time.process_time()
        try:
            await self.gql(CANCEL_RUN, {"id": run_id})
            await asyncio.wait_for(window.done.wait(), 120)
            server_cpu = _cpu_ms(self.pid) - cpu_before
            client_cpu = (time.process_time() - client_before) * 1000
        finally:
            gc.enable()
            for subscriber in self.sockets:
                subscriber.close_window()
        await asyncio.wait_for(asyncio.gather(*(s.completed.wait() for s in self.sockets)), 120)
        latencies = sorted(
            _delay_ms(s.arrivals[0][0], s.arrivals[0][1]["runEvents"]["createdAt"])
            for s in self.sockets
        )
        return {
            "subscribers": count,
            "min_ms": round(latencies[0], 1),
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
            "max_ms": round(latencies[-1], 1),
            "received": sum(len(s.arrivals) == 1 for s in self.sockets),
            "server_cpu_ms_per_delivery": round(server_cpu / count, 3),
            "client_cpu_ms_per_delivery": round(client_cpu / count, 3),
        }


async def _run(port: int, key: str, pid: int, levels: list[int]) -> list[dict[str, Any]]:
    bench = Bench("127.0.0.1", port, key, pid)
    for _ in range(300):
        try:
            await bench.http.get("/healthz")
            break
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    agent = (await bench.gql(CREATE_AGENT))["createAgent"]["agent"]["id"]
    baseline = _rss_kib(pid)
    results = []
    for count in levels:
        result = await bench.level(count, agent)
        result["server_kib_per_socket"] = round((_rss_kib(pid) - baseline) / count, 1)
        results.append(result)
        print(
            f"{count:>6} subscribers: min {result['min_ms']} ms, p50 {result['p50_ms']} ms, "
            f"p99 {result['p99_ms']} ms, "
            f"max {result['max_ms']} ms; server memory {result['server_kib_per_socket']} "
            f"KiB per socket; CPU per delivery: server {result['server_cpu_ms_per_delivery']}"
            f" ms, client {result['client_cpu_ms_per_delivery']} ms",
            flush=True,
        )
    for subscriber in bench.sockets:
        subscriber.close()
    await bench.http.aclose()
    return results


def _serve_and_measure(levels: list[int], shared: bool) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "RUNQL_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/bench.db",
            "RUNQL_ENV": "production",
            "RUNQL_WORKERS": "0",
            "RUNQL_WS_SHARED_STREAMS": "1" if shared else "0",
            "RUNQL_SERVE_WORKERS": "1",
        }
        subprocess.run(
            [sys.executable, "-m", "runql", "migrate"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        made = subprocess.run(
            [sys.executable, "-m", "runql", "keys", "create", "--name", "bench"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        key = made.stdout.strip().splitlines()[-1]
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "runql", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(_run(port, key, server.pid, levels))
        finally:
            server.terminate()
            server.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,100,1000,5000")
    parser.add_argument(
        "--per-subscriber-levels",
        default="1,100,1000",
        help="levels also measured with shared streams off (empty: none)",
    )
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    naive_levels = [int(level) for level in args.per_subscriber_levels.split(",") if level]
    _raise_file_limit()
    print("shared streams (runql.fanout):", flush=True)
    results = _serve_and_measure(levels, shared=True)
    naive: list[dict[str, Any]] = []
    if naive_levels:
        print("per-subscriber executions (RUNQL_WS_SHARED_STREAMS=0):", flush=True)
        naive = _serve_and_measure(naive_levels, shared=False)
    p99 = {result["subscribers"]: result["p99_ms"] for result in results}
    ratios = {
        str(n["subscribers"]): round(n["p99_ms"] / p99[n["subscribers"]], 1)
        for n in naive
        if n["subscribers"] in p99
    }
    print(
        json.dumps(
            {"levels": results, "per_subscriber": naive, "per_subscriber_p99_over_shared": ratios}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
