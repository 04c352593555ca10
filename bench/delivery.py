"""Benchmark of the delivery side alone: the gateway's CPU per frame a shared stream writes.

A real `runql serve` (no workers, PostgreSQL; pinned to core 0 when there are two cores or more,
this process on core 1) serves `--subscribers` graphql-transport-ws sockets per run on `--runs`
runs, each following `runEvents` with bench/stream.py's selection. This process then writes
`--events` MESSAGE_DELTA events per run, one transaction per round every 50 ms (as the
coalescing flusher writes them), then ends every run. Every event reaches the gateway by
LISTEN/NOTIFY, so the count of frames is fixed (runs x subscribers x events) and the gateway's
CPU (utime + stime from /proc, from the first write to the last socket's `complete`) divided by
it is comparable between trees, unlike bench/stream.py's per-delta figure, whose count of deltas
follows how the flusher coalesced. Each socket's sequence numbers are checked (1.. with no gap
or duplicate: "exact"); latency is from an event's createdAt to its arrival. The last line is
JSON.

Usage: python bench/delivery.py [--runs 50] [--subscribers 20] [--events 60]
       [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.scratch import scratch_database
from bench.serve import cpu_seconds, free_port, loadavg, runql_cli, wait_until_up
from bench.stream import Client
from bench.wsclient import Subscriber, Window, open_subscriber
from runql.enums import RunEventType, RunStatus
from runql.lifecycle.transitions import transition
from runql.storage.database import Database
from runql.storage.events import append_event

ROOT = Path(__file__).resolve().parent.parent
RUN_EVENTS = "subscription($id: ID!) { runEvents(runId: $id) { seq type payload createdAt } }"
CREATE_AGENT = 'mutation { createAgent(input: {name: "Echo", kind: "echo"}) { agent { id } } }'
CREATE_RUN = """mutation($a: ID!, $t: String!) {
  createRun(input: {agentId: $a, content: {text: $t}}) { run { id } } }"""
ROUND_SECONDS = 0.05
TEXT = "tok tok tok "


async def _open(port: int, key: str, count: int) -> list[Subscriber]:
    sockets: list[Subscriber] = []
    while len(sockets) < count:
        batch = min(200, count - len(sockets))
        sockets += await asyncio.gather(
            *(open_subscriber("127.0.0.1", port, key, time.time) for _ in range(batch))
        )
    return sockets


async def _write(database: Database, runs: list[str], events: int) -> None:
    for index in range(events):
        started = time.monotonic()
        async with database.write() as session:
            for run_id in runs:
                payload = {"messageId": "msg_x", "offset": index * len(TEXT), "text": TEXT}
                await append_event(session, run_id, RunEventType.MESSAGE_DELTA, payload)
        await asyncio.sleep(max(0.0, ROUND_SECONDS - (time.monotonic() - started)))
    for run_id in runs:
        async with database.write() as session:
            await transition(session, run_id, RunStatus.SUCCESS)


def _arrived_after_created(arrived: float, stamp: str) -> float:
    created = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return (arrived - created) * 1000


def _figures(sockets: list[Subscriber], cpu: float, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    exact = True
    for socket in sockets:
        events = [data["runEvents"] for _arrived, data in socket.arrivals]
        exact &= [event["seq"] for event in events] == list(range(1, len(events) + 1))
        latencies += [
            _arrived_after_created(arrived, data["runEvents"]["createdAt"])
            for arrived, data in socket.arrivals
            if data["runEvents"]["type"] == "MESSAGE_DELTA"
        ]
    latencies.sort()
    frames = len(latencies)
    return {
        "frames": frames,
        "exact": exact,
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[min(frames - 1, int(frames * 0.99))], 1),
        "server_cpu_s": round(cpu, 3),
        "server_cpu_us_per_frame": round(cpu * 1e6 / frames, 2),
        "seconds": round(seconds, 2),
    }


async def _measure(args: argparse.Namespace, url: str, port: int, key: str, pid: int) -> Any:
    client = Client(port, key)
    agent = (await client.gql(CREATE_AGENT))["createAgent"]["agent"]["id"]
    runs = [
        (await client.gql(CREATE_RUN, {"a": agent, "t": f"run {index}"}))["createRun"]["run"]["id"]
        for index in range(args.runs)
    ]
    database = Database.from_url(url)
    for run_id in runs:
        async with database.write() as session:
            await transition(session, run_id, RunStatus.RUNNING)
    sockets = await _open(port, key, args.runs * args.subscribers)
    for index, run_id in enumerate(runs):
        for socket in sockets[index * args.subscribers : (index + 1) * args.subscribers]:
            socket.subscribe(run_id, RUN_EVENTS, {"id": run_id})
    async with asyncio.timeout(120):  # every socket has its run's first two events (polled)
        while not all(len(socket.arrivals) >= 2 for socket in sockets):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    window = Window(len(sockets), b'"complete"')
    for socket in sockets:
        socket.open_window(window)
    gc.collect()
    gc.disable()  # this client's collections would delay its stamps
    try:
        cpu_before, started = cpu_seconds(pid), time.monotonic()
        await _write(database, runs, args.events)
        await asyncio.wait_for(window.done.wait(), 120)
        cpu, seconds = cpu_seconds(pid) - cpu_before, time.monotonic() - started
    finally:
        gc.enable()
        for socket in sockets:
            socket.close_window()
    figures = _figures(sockets, cpu, seconds)
    figures["frames_expected"] = args.runs * args.subscribers * args.events
    for socket in sockets:
        socket.close()
    await client.http.aclose()
    await database.dispose()
    return figures


def _environment(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "RUNQL_DATABASE_URL": url,
        "RUNQL_ENV": "production",
        "RUNQL_WORKERS": "0",
        "RUNQL_GRAPHIQL": "0",
        "RUNQL_SERVE_WORKERS": "1",
        "RUNQL_RATE_LIMIT_PER_SECOND": "1000000",
        "RUNQL_RATE_LIMIT_BURST": "1000000",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--subscribers", type=int, default=20, help="sockets per run")
    parser.add_argument("--events", type=int, default=60, help="MESSAGE_DELTA events per run")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pinned = len(os.sched_getaffinity(0)) >= 2
    if pinned:
        os.sched_setaffinity(0, {1})
    before = loadavg()
    with tempfile.TemporaryDirectory() as folder, scratch_database(args.postgres, folder) as url:
        environment = _environment(url)
        runql_cli(environment, "migrate")
        made = runql_cli(environment, "keys", "create", "--name", "delivery")
        key = made.strip().splitlines()[-1]
        port = free_port()
        pin = ["taskset", "-c", "0"] if pinned else []
        command = [*pin, sys.executable, "-m", "runql", "serve", "--port", str(port)]
        with tempfile.TemporaryFile() as written:
            server = subprocess.Popen(
                command, env=environment, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=written
            )
            try:
                wait_until_up(port, server, written)
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    figures = runner.run(_measure(args, url, port, key, server.pid))
            finally:
                server.terminate()
                server.wait(timeout=30)
    print(json.dumps({**figures, "loadavg_before": before, "loadavg_after": loadavg()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
