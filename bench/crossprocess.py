"""Benchmark of cross-process events: a change committed by one gateway process reaches a
subscriber of another. On PostgreSQL: NOTIFY in the committing transaction, the other process's
LISTEN connection, its hub, the subscriber's re-read of the log. On a SQLite file
(`--database sqlite`): the other process's log tail (`PRAGMA data_version` every 20 ms, then
one indexed read), its hub, the subscriber's re-read.

For each of `--runs` runs: create it through gateway A, subscribe to its events through
gateway B, cancel it through A; the figure is the time from the event's `createdAt` (stamped
in A's transaction, just before the commit) to its arrival at B's subscriber.

The last line is JSON: {"p50_ms": ..., "p99_ms": ..., "max_ms": ..., "runs": ...,
"database": ...}

Usage: python bench/crossprocess.py [--runs 200] [--database postgresql|sqlite]
       [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.scratch import scratch_database

ROOT = Path(__file__).resolve().parent.parent
CREATE_AGENT = 'mutation { createAgent(input: {name: "Echo", kind: "echo"}) { agent { id } } }'
CREATE_RUN = """mutation($a: ID!) { createRun(input: {agentId: $a, content: {text: "x"}})
  { run { id } } }"""
CANCEL_RUN = "mutation($id: ID!) { cancelRun(id: $id) { run { status } } }"
RUN_EVENTS = "subscription($id: ID!) { runEvents(runId: $id, after: 1) { seq createdAt } }"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _gql(
    client: httpx.AsyncClient, url: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = (await client.post(url, json={"query": query, "variables": variables or {}})).json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]  # type: ignore[no-any-return]


async def _one(client: httpx.AsyncClient, a: str, b_ws: str, key: str, agent: str) -> float:
    run_id = (await _gql(client, a, CREATE_RUN, {"a": agent}))["createRun"]["run"]["id"]
    async with connect(b_ws, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": RUN_EVENTS, "variables": {"id": run_id}},
                }
            )
        )
        await asyncio.sleep(0.05)  # the subscription is live
        await _gql(client, a, CANCEL_RUN, {"id": run_id})
        async with asyncio.timeout(30):
            while True:
                message = json.loads(await ws.recv())
                arrived = time.time()
                if message["type"] == "next":
                    stamp = message["payload"]["data"]["runEvents"]["createdAt"]
                    return (
                        arrived - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                    ) * 1000


async def _measure(urls: list[str], key: str, runs: int) -> list[float]:
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        for url in urls:
            for _ in range(300):
                try:
                    await client.get(url.replace("/graphql", "/"))
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        agent = (await _gql(client, urls[0], CREATE_AGENT))["createAgent"]["agent"]["id"]
        b_ws = urls[1].replace("http://", "ws://")
        return [await _one(client, urls[0], b_ws, key, agent) for _ in range(runs)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    server = args.postgres if args.database == "postgresql" else None
    with tempfile.TemporaryDirectory() as folder, scratch_database(server, folder) as url:
        env = {
            **os.environ,
            "RUNQL_DATABASE_URL": url,
            "RUNQL_ENV": "production",
            "RUNQL_WORKERS": "0",
            "RUNQL_RATE_LIMIT_PER_SECOND": "1000000",
            "RUNQL_RATE_LIMIT_BURST": "1000000",
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
            [sys.executable, "-m", "runql", "keys", "create", "--name", "b"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        key = made.stdout.strip().splitlines()[-1]
        ports = [_free_port(), _free_port()]
        servers = [
            subprocess.Popen(
                [sys.executable, "-m", "runql", "serve", "--port", str(p)],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for p in ports
        ]
        try:
            latencies = sorted(
                asyncio.run(
                    _measure([f"http://127.0.0.1:{p}/graphql" for p in ports], key, args.runs)
                )
            )
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
    figures = {
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
        "max_ms": round(latencies[-1], 1),
        "runs": args.runs,
        "database": args.database,
    }
    print(
        f"commit on gateway A -> arrival at a subscriber of gateway B: p50 "
        f"{figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
