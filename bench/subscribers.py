"""Benchmark of live fan-out: K websocket subscribers to one run on one server process.

A real `runql serve` (no workers) listens on a loopback port; this process opens K sockets
(graphql-transport-ws, the `websockets` library), each subscribed to `runEvents` of the same
run, then cancels the run through GraphQL. For every socket it takes the time from the event's
`createdAt` (stamped in the committing transaction, just before the commit: the figure is a
little pessimistic) to the arrival of that event, and it reads the server's resident memory
before and after the sockets are open.

The last line is JSON: {"levels": [{"subscribers": K, "p50_ms": ..., "p99_ms": ...,
"max_ms": ..., "received": K, "server_kib_per_socket": ...}, ...]}

Usage: python bench/subscribers.py [--levels 1,100,1000,5000]
"""

from __future__ import annotations

import argparse
import asyncio
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
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
CREATE_AGENT = """mutation { createAgent(input: {name: "Echo", kind: "echo"}) { agent { id } } }"""
CREATE_RUN = """mutation($a: ID!) { createRun(input: {agentId: $a, content: {text: "fan-out"}})
  { run { id } } }"""
CANCEL_RUN = "mutation($id: ID!) { cancelRun(id: $id) { run { status } } }"
RUN_EVENTS = "subscription($id: ID!, $after: Int) { runEvents(runId: $id, after: $after) " \
             "{ seq createdAt } }"


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


class Bench:
    def __init__(self, base: str, key: str, pid: int) -> None:
        self.http = httpx.AsyncClient(base_url=f"http://{base}", timeout=60,
                                      headers={"Authorization": f"Bearer {key}"})
        self.ws_url = f"ws://{base}/graphql"
        self.key = key
        self.pid = pid
        self.sockets: list[ClientConnection] = []

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = (await self.http.post("/graphql", json={"query": query,
                                                       "variables": variables or {}})).json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]  # type: ignore[no-any-return]

    async def _open_one(self) -> ClientConnection:
        ws = await connect(self.ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                           max_queue=64, open_timeout=60)
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"Authorization": f"Bearer {self.key}"}}))
        ack = json.loads(await ws.recv())
        assert ack["type"] == "connection_ack", ack
        return ws

    async def grow_to(self, count: int) -> None:
        while len(self.sockets) < count:
            batch = min(200, count - len(self.sockets))
            self.sockets += await asyncio.gather(*(self._open_one() for _ in range(batch)))

    async def _subscribe(self, ws: ClientConnection, run_id: str, after: int) -> None:
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": RUN_EVENTS, "variables": {"id": run_id, "after": after}}}))

    async def _await_event(self, ws: ClientConnection) -> float:
        while True:
            raw = await ws.recv()
            arrived = time.time()
            message = json.loads(raw)
            if message["type"] == "next":
                stamp = message["payload"]["data"]["runEvents"]["createdAt"]
                created = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                return (arrived - created) * 1000

    async def _await_complete(self, ws: ClientConnection) -> None:
        while json.loads(await ws.recv())["type"] != "complete":
            pass

    async def level(self, count: int, agent: str) -> dict[str, Any]:
        before = _rss_kib(self.pid) if not self.sockets else None
        await self.grow_to(count)
        run_id = (await self.gql(CREATE_RUN, {"a": agent}))["createRun"]["run"]["id"]
        await asyncio.gather(*(self._subscribe(ws, run_id, 1) for ws in self.sockets))
        await asyncio.sleep(1 + count / 2000)  # every subscription is live before the change
        waiting = [asyncio.create_task(self._await_event(ws)) for ws in self.sockets]
        cpu_before, client_before = _cpu_ms(self.pid), time.process_time()
        await self.gql(CANCEL_RUN, {"id": run_id})
        latencies = sorted(await asyncio.wait_for(asyncio.gather(*waiting), 120))
        server_cpu = _cpu_ms(self.pid) - cpu_before
        client_cpu = (time.process_time() - client_before) * 1000
        await asyncio.gather(*(self._await_complete(ws) for ws in self.sockets))
        return {
            "subscribers": count,
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
            "max_ms": round(latencies[-1], 1),
            "received": len(latencies),
            "server_cpu_ms_per_delivery": round(server_cpu / count, 3),
            "client_cpu_ms_per_delivery": round(client_cpu / count, 3),
            "baseline_kib": before,
        }


async def _run(base: str, key: str, pid: int, levels: list[int]) -> list[dict[str, Any]]:
    bench = Bench(base, key, pid)
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
        del result["baseline_kib"]
        results.append(result)
        print(f"{count:>6} subscribers: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
              f"max {result['max_ms']} ms; server memory {result['server_kib_per_socket']} "
              f"KiB per socket; CPU per delivery: server {result['server_cpu_ms_per_delivery']}"
              f" ms, client {result['client_cpu_ms_per_delivery']} ms", flush=True)
    await asyncio.gather(*(ws.close() for ws in bench.sockets))
    await bench.http.aclose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,100,1000,5000")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    _raise_file_limit()
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "RUNQL_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/bench.db",
               "RUNQL_ENV": "production", "RUNQL_WORKERS": "0"}
        subprocess.run([sys.executable, "-m", "runql", "migrate"], env=env, cwd=ROOT,
                       check=True, capture_output=True)
        made = subprocess.run([sys.executable, "-m", "runql", "keys", "create", "--name", "bench"],
                              env=env, cwd=ROOT, check=True, capture_output=True, text=True)
        key = made.stdout.strip().splitlines()[-1]
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "runql", "serve", "--port", str(port)], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            results = asyncio.run(_run(f"127.0.0.1:{port}", key, server.pid, levels))
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(json.dumps({"levels": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
