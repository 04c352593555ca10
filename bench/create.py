"""Benchmark of createRun end to end: a real server (uvicorn, executor on) on a loopback port,
GraphQL over HTTP, the echo agent at zero delay, a fresh SQLite file.

It reports:
- create_per_s: createRun mutations answered per second, `--concurrency` clients at once;
- complete_per_s: runs that reached SUCCESS per second, from the first create to the last;
- to_success_ms p50/p99: from a run's createdAt to its completedAt, as the server stamped them.

- single_to_success p50/max: the same for runs created one at a time on an idle server.

The last line is JSON: {"single_to_success_p50_ms": ..., "single_to_success_max_ms": ...,
"create_per_s": ..., "complete_per_s": ..., "to_success_p50_ms": ..., "to_success_p99_ms": ...,
"runs": ..., "concurrency": ..., "workers": ...}

Usage: python bench/create.py [--runs 400] [--concurrency 16] [--workers 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.scratch import scratch_database

ROOT = Path(__file__).resolve().parent.parent
CREATE = """mutation($agent: ID!, $text: String!) {
  createRun(input: {agentId: $agent, content: {text: $text}}) { run { id status } } }"""
CREATE_AGENT = """mutation { createAgent(input: {name: "Echo", kind: "echo",
  config: {delay_ms: 0}}) { agent { id } } }"""
UNFINISHED = "{ runs(filter: {status: [PENDING, RUNNING]}) { totalCount } }"
TIMES = """query($after: String) { runs(first: 100, after: $after) {
  pageInfo { hasNextPage endCursor } edges { node { status createdAt completedAt } } } }"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _post(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    response = await client.post("/graphql", content=orjson.dumps(
        {"query": query, "variables": variables or {}}),
        headers={"Content-Type": "application/json"})
    body: dict[str, Any] = orjson.loads(response.content)
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]  # type: ignore[no-any-return]


async def _wait_until_up(client: httpx.AsyncClient) -> None:
    for _ in range(300):
        try:
            await client.get("/graphql")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start")


def _stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _durations(client: httpx.AsyncClient) -> list[float]:
    found: list[float] = []
    after = None
    while True:
        page = (await _post(client, TIMES, {"after": after}))["runs"]
        for edge in page["edges"]:
            node = edge["node"]
            if node["status"] == "SUCCESS":
                delta = _stamp(node["completedAt"]) - _stamp(node["createdAt"])
                found.append(delta.total_seconds() * 1000)
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


SINGLE_RUNS = 20
STATUS = "query($id: ID!) { run(id: $id) { status createdAt completedAt } }"


async def _one_at_a_time(client: httpx.AsyncClient, agent: str, count: int) -> list[float]:
    """createdAt -> completedAt of runs created on an idle server, one after another."""
    found = []
    for index in range(count):
        run = (await _post(client, CREATE, {"agent": agent, "text": f"alone {index}"}))
        run_id = run["createRun"]["run"]["id"]
        for _ in range(2000):
            node = (await _post(client, STATUS, {"id": run_id}))["run"]
            if node["status"] == "SUCCESS":
                delta = _stamp(node["completedAt"]) - _stamp(node["createdAt"])
                found.append(delta.total_seconds() * 1000)
                break
            await asyncio.sleep(0.005)
        else:
            raise RuntimeError(f"run {run_id} did not succeed")
    return found


async def _measure(base_url: str, key: str, runs: int, concurrency: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        await _wait_until_up(client)
        agent = (await _post(client, CREATE_AGENT))["createAgent"]["agent"]["id"]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(runs):
            queue.put_nowait(index)

        async def creator() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                await _post(client, CREATE, {"agent": agent, "text": f"message {index}"})

        started = time.perf_counter()
        await asyncio.gather(*(creator() for _ in range(concurrency)))
        created = time.perf_counter()
        deadline = created + 300
        while (await _post(client, UNFINISHED))["runs"]["totalCount"] > 0:
            if time.perf_counter() > deadline:
                raise RuntimeError("runs did not finish within 300 s")
            await asyncio.sleep(0.05)
        finished = time.perf_counter()
        durations = sorted(await _durations(client))
        if len(durations) != runs:
            raise RuntimeError(f"{runs - len(durations)} runs did not succeed")
        alone = await _one_at_a_time(client, agent, SINGLE_RUNS)
    return {
        "single_to_success_p50_ms": round(statistics.median(alone), 1),
        "single_to_success_max_ms": round(max(alone), 1),
        "create_per_s": round(runs / (created - started), 1),
        "complete_per_s": round(runs / (finished - started), 1),
        "to_success_p50_ms": round(statistics.median(durations), 1),
        "to_success_p99_ms": round(durations[min(len(durations) - 1,
                                                 int(len(durations) * 0.99))], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--postgres", metavar="URL", help="run on a new database of this "
                        "PostgreSQL server (e.g. postgresql://postgres@127.0.0.1:5432/test) "
                        "instead of a SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, scratch_database(args.postgres, folder) as url:
        port = _free_port()
        env = {**os.environ, "RUNQL_DATABASE_URL": url,
               "RUNQL_ENV": "production", "RUNQL_WORKERS": str(args.workers),
               "RUNQL_POLL_SECONDS": "0.5", "RUNQL_RATE_LIMIT_PER_SECOND": "1000000",
               "RUNQL_RATE_LIMIT_BURST": "1000000", "RUNQL_SERVE_WORKERS": "1"}
        subprocess.run([sys.executable, "-m", "runql", "migrate"], env=env, cwd=ROOT,
                       check=True, capture_output=True)
        made = subprocess.run([sys.executable, "-m", "runql", "keys", "create", "--name", "bench"],
                              env=env, cwd=ROOT, check=True, capture_output=True, text=True)
        key = made.stdout.strip().splitlines()[-1]
        server = subprocess.Popen(
            [sys.executable, "-m", "runql", "serve", "--port", str(port)], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            figures = asyncio.run(_measure(f"http://127.0.0.1:{port}", key, args.runs,
                                           args.concurrency))
        finally:
            server.terminate()
            server.wait(timeout=30)
    figures.update(runs=args.runs, concurrency=args.concurrency, workers=args.workers,
                   database="postgresql" if args.postgres else "sqlite")
    print(f"burst of {args.runs}: createRun {figures['create_per_s']}/s answered, "
          f"{figures['complete_per_s']}/s to SUCCESS; createdAt -> completedAt p50 "
          f"{figures['to_success_p50_ms']} ms, p99 {figures['to_success_p99_ms']} ms (queued)")
    print(f"one at a time: createdAt -> completedAt p50 "
          f"{figures['single_to_success_p50_ms']} ms, max {figures['single_to_success_max_ms']} ms")
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
