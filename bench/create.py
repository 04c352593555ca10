"""Benchmark of createRun end to end: a real `runql serve` on a loopback port, GraphQL over
HTTP, a fresh SQLite file or PostgreSQL database (`--postgres`).

(a) createRun answered (`--part answered`): runql with no executor (RUNQL_WORKERS=0), then a
floor server on the same database (bench/createfloor.py: the same rows through sqlite3 or
asyncpg, group-committed in batches as runql's are, behind a minimal ASGI app on uvicorn), each
pinned to core 0, bench/openloop.py on core 1 sending createRun open loop at each `--rates`
rate for `--seconds` (latency from each request's due time) until a rate saturates. For each:
peak_per_s (the most answered a second at any rate), server_cpu_ms per createRun at the highest
rate that kept up, p99_ms_at_400, every step; and runql / floor ratios.

(b) runs to SUCCESS (`--part success`): `--runs` createRuns from `--concurrency` clients with
`--workers` executing them (echo at zero delay): create_per_s, complete_per_s, createdAt ->
completedAt p50/p99; then single_to_success p50/max, runs created one at a time. Then per
worker process: `--runs` runs created through a gateway that executes none (RUNQL_WORKERS=0),
then executed by one `runql worker` with default settings: worker_executed_per_s (first
startedAt to last completedAt) and worker_cpu_ms_per_run (from its start-up line on).

(c) `--in-flight N`: N runs, one per thread, of a webhook agent whose far end (a loopback
server in a process of its own, bench/create.py --slow-agent) answers each after
`--agent-seconds` (2 by default), created by 16 clients (`--concurrency`) through a gateway that
executes none (`runql serve`, RUNQL_WORKERS=0) and executed by one `runql worker` with default
settings (started as (b)'s is): the seconds from the first createRun to the last SUCCESS (and
to the last createRun answered), the most requests the agent had open at once, the worker's
resident memory at its peak over its memory before (per run in flight), the worker's CPU per
run, the gateway's CPU per create, and this process's own CPU per run (the load: creates and
polls, to tell whether it, not the server, set the pace). `--single-process`: one `runql serve`
with default settings answers the creates and executes the runs (its memory and CPU are then
the executor's, and there is no gateway figure).

The last line is JSON: (a) under "answered", (b)'s figures at the top level, with "database"
and "loadavg"; (c) prints its own figures as its last line, with "database" and "loadavg".

Usage: python bench/create.py [--part all|answered|success] [--rates 100,200,400,...]
           [--seconds 5] [--runs 400] [--concurrency 16] [--workers 4] [--postgres URL]
       python bench/create.py --in-flight 2000 [--agent-seconds 2] [--single-process]
           [--postgres URL]
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.scratch import scratch_database
from bench.serve import SERVER_CORE, cpu_seconds, generate

ROOT = Path(__file__).resolve().parent.parent
UNSET = "\0unset"  # a setting _server leaves out of the server's environment
CREATE = """mutation($agent: ID!, $text: String!) {
  createRun(input: {agentId: $agent, content: {text: $text}}) { run { id status } } }"""
CREATE_AGENT = """mutation { createAgent(input: {name: "Echo", kind: "echo",
  config: {delay_ms: 0}}) { agent { id } } }"""
CREATE_WEBHOOK = """mutation($url: String!) { createAgent(input: {name: "Slow", kind: "webhook",
  config: {url: $url, timeout_s: 120, retries: 0}}) { agent { id } } }"""
UNFINISHED = "{ runs(filter: {status: [PENDING, RUNNING]}) { totalCount } }"
FAILED = (
    "{ runs(first: 5, filter: {status: [ERROR]}) { edges { node { errors { code message } } } } }"
)
TIMES = """query($after: String) { runs(first: 100, after: $after) {
  pageInfo { hasNextPage endCursor }
  edges { node { status createdAt startedAt completedAt } } } }"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        content=orjson.dumps({"query": query, "variables": variables or {}}),
        headers={"Content-Type": "application/json"},
    )
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


async def _nodes(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every run's status and times, page after page."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await _post(client, TIMES, {"after": after}))["runs"]
        found += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


async def _durations(client: httpx.AsyncClient) -> list[float]:
    """createdAt -> completedAt of every run that succeeded, in ms."""
    return [
        (_stamp(node["completedAt"]) - _stamp(node["createdAt"])).total_seconds() * 1000
        for node in await _nodes(client)
        if node["status"] == "SUCCESS"
    ]


SINGLE_RUNS = 20
STATUS = "query($id: ID!) { run(id: $id) { status createdAt completedAt } }"


async def _one_at_a_time(client: httpx.AsyncClient, agent: str, count: int) -> list[float]:
    """createdAt -> completedAt of runs created on an idle server, one after another."""
    found = []
    for index in range(count):
        run = await _post(client, CREATE, {"agent": agent, "text": f"alone {index}"})
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


async def _burst(
    client: httpx.AsyncClient, agent: str, runs: int, concurrency: int, seconds: float
) -> tuple[float, float, float]:
    """`runs` createRuns from `concurrency` clients at once, then a wait (`seconds` at most)
    until none is PENDING or RUNNING: when it started, when the last createRun was answered,
    when the last run ended (perf_counter)."""
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
    while (await _post(client, UNFINISHED))["runs"]["totalCount"] > 0:
        if time.perf_counter() > created + seconds:
            raise RuntimeError(f"runs did not finish within {seconds:g} s")
        await asyncio.sleep(0.05)
    return started, created, time.perf_counter()


@contextmanager
def _server(
    postgres: str | None, settings: dict[str, str], pinned: list[str] | None = None
) -> Iterator[tuple[int, str, int, str]]:
    """A migrated scratch database (a SQLite file, or a new PostgreSQL database) with a key,
    served by one `runql serve` process with production settings and `settings` (run under
    `pinned`, such as taskset, if given): its port, the key, the process id and the database's
    URL."""
    with tempfile.TemporaryDirectory() as folder, scratch_database(postgres, folder) as url:
        port = _free_port()
        env = {
            **os.environ,
            "RUNQL_DATABASE_URL": url,
            "RUNQL_ENV": "production",
            "RUNQL_RATE_LIMIT_PER_SECOND": "1000000",
            "RUNQL_RATE_LIMIT_BURST": "1000000",
            "RUNQL_SERVE_WORKERS": "1",
            **settings,
        }
        env = {name: value for name, value in env.items() if value != UNSET}
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
        server = subprocess.Popen(
            [*(pinned or []), sys.executable, "-m", "runql", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield port, key, server.pid, url
        finally:
            server.terminate()
            server.wait(timeout=60)


async def _measure(base_url: str, key: str, runs: int, concurrency: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=60, limits=limits, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        await _wait_until_up(client)
        agent = (await _post(client, CREATE_AGENT))["createAgent"]["agent"]["id"]
        started, created, finished = await _burst(client, agent, runs, concurrency, 300)
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
        "to_success_p99_ms": round(
            durations[min(len(durations) - 1, int(len(durations) * 0.99))], 1
        ),
    }


# --------------------------------------------------------------------------------------------
# (a) createRun answered: runql beside a floor, open loop at fixed rates.
# --------------------------------------------------------------------------------------------

RATES = "100,200,400,600,800,1000"
MIN_ACHIEVED = 0.95  # a step that answers less than this share of its rate is saturated
P99_RATE = 400.0  # the rate at which p99 is reported


def _bodies(agent: str, count: int = 1000) -> list[str]:
    return [
        orjson.dumps(
            {"query": CREATE, "variables": {"agent": agent, "text": f"message {n}"}}
        ).decode()
        for n in range(count)
    ]


@contextmanager
def _floor(url: str, key: str) -> Iterator[tuple[int, int]]:
    """bench/createfloor.py on the same database, pinned to the server core: port and pid."""
    port = _free_port()
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            SERVER_CORE,
            sys.executable,
            str(ROOT / "bench" / "createfloor.py"),
            "--database-url",
            url,
            "--key",
            key,
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                httpx.post(f"http://127.0.0.1:{port}/", content=b"{}", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)


def _steps(
    port: int, pid: int, key: str, bodies: Path, rates: list[float], seconds: float
) -> list[dict[str, Any]]:
    """Open-loop steps at each rate (bench/openloop.py on the load core) until one saturates:
    each step's achieved rate, p50/p99 and the server's CPU per createRun answered."""
    generate(port, key, bodies, "--rate", "100", "--seconds", "2", "--connections", "256")  # warm
    found = []
    for rate in rates:
        before = cpu_seconds(pid)
        report = generate(
            port,
            key,
            bodies,
            "--rate",
            f"{rate:g}",
            "--seconds",
            f"{seconds:g}",
            "--connections",
            "256",
        )
        answered = max(1, int(report["answered"]))
        step = {
            "rate": rate,
            "achieved_rate": report["achieved_rate"] or 0.0,
            "p50_ms": report["p50_ms"],
            "p99_ms": report["p99_ms"],
            "errors": report["errors"],
            "server_cpu_ms": round((cpu_seconds(pid) - before) * 1000 / answered, 3),
        }
        found.append(step)
        if step["errors"] or step["achieved_rate"] < MIN_ACHIEVED * rate:
            break
    return found


def _summary(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Peak answered/s (the most any step achieved), CPU per createRun at the highest step
    that kept up, and p99 at P99_RATE."""
    kept = [s for s in steps if not s["errors"] and s["achieved_rate"] >= MIN_ACHIEVED * s["rate"]]
    at = [s for s in steps if s["rate"] == P99_RATE]
    basis = kept[-1] if kept else steps[-1]
    return {
        "peak_per_s": max(s["achieved_rate"] for s in steps),
        "server_cpu_ms": basis["server_cpu_ms"],
        "cpu_at_rate": basis["rate"],
        "p99_ms_at_400": at[0]["p99_ms"] if at else None,
        "steps": steps,
    }


def answered_main(args: argparse.Namespace) -> dict[str, Any]:
    """(a): runql (no executor) and then the floor, on one scratch database."""
    rates = [float(rate) for rate in args.rates.split(",")]
    pinned = ["taskset", "-c", SERVER_CORE]
    with (
        tempfile.TemporaryDirectory() as folder,
        _server(args.postgres, {"RUNQL_WORKERS": "0"}, pinned) as (port, key, pid, url),
    ):
        base = f"http://127.0.0.1:{port}"
        agent = asyncio.run(_echo_agent(base, key))
        bodies = Path(folder) / "bodies.json"
        bodies.write_bytes(orjson.dumps(_bodies(agent)))
        runql = _summary(_steps(port, pid, key, bodies, rates, args.seconds))
        with _floor(url, key) as (floor_port, floor_pid):
            floor = _summary(_steps(floor_port, floor_pid, key, bodies, rates, args.seconds))
    return {
        "runql": runql,
        "floor": floor,
        "peak_ratio": round(runql["peak_per_s"] / max(floor["peak_per_s"], 0.1), 2),
        "cpu_ratio": round(runql["server_cpu_ms"] / max(floor["server_cpu_ms"], 0.001), 2),
    }


async def _echo_agent(base_url: str, key: str) -> str:
    async with httpx.AsyncClient(
        base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        await _wait_until_up(client)
        made = await _post(client, CREATE_AGENT)
    return str(made["createAgent"]["agent"]["id"])


class SlowAgent:
    """A webhook's far end that answers every run after `seconds`, counting the requests it
    holds open at once; `GET /stats` answers those counts. Served by uvicorn in a process of
    its own (`serve_slow_agent`), so that neither its work nor the create client's shares a
    core's interpreter with the other: the figures are the server's, not the load's."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.open = 0
        self.most = 0
        self.answered = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if scope["method"] == "GET":
            stats = {"open": self.open, "most": self.most, "answered": self.answered}
            await self._answer(send, orjson.dumps(stats))
            return
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.open -= 1
        await self._answer(send, b'{"text": "done"}')
        self.answered += 1

    @staticmethod
    async def _answer(send: Any, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def serve_slow_agent(port: int, seconds: float) -> int:
    """The slow agent's process (`--slow-agent PORT`): serves until terminated."""
    import uvicorn

    uvicorn.run(
        SlowAgent(seconds),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=30,
    )
    return 0


@contextmanager
def _slow_agent(seconds: float) -> Iterator[int]:
    """The slow agent in a process of its own, up: its port."""
    port = _free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "--slow-agent", str(port)]
    process = subprocess.Popen(
        [*command, "--agent-seconds", f"{seconds:g}"], cwd=ROOT, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=60)


def _agent_stats(port: int) -> dict[str, int]:
    stats: dict[str, int] = orjson.loads(httpx.get(f"http://127.0.0.1:{port}/stats").content)
    return stats


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class _Watched:
    """The processes (c) measures: the gateway answering the creates and the process executing
    the runs (the same one with `--single-process`)."""

    gateway: int
    executor: int


def _seconds(node: dict[str, Any], since: str, until: str) -> float:
    return (_stamp(node[until]) - _stamp(node[since])).total_seconds()


CREATE_RATE = 1000.0  # (c)'s createRuns are all due within N / CREATE_RATE seconds


async def _in_flight(
    base_url: str, key: str, args: argparse.Namespace, agent_port: int, watched: _Watched
) -> dict[str, Any]:
    """The createRuns are sent by bench/openloop.py (raw keep-alive connections, a fraction of
    a millisecond of CPU each), all due at once and answered as fast as the gateway can over
    `--concurrency` connections; the times are the runs' own (first createdAt, last createdAt,
    last completedAt), so they are the server's, whatever the load generator's start-up."""
    runs = args.in_flight
    async with httpx.AsyncClient(
        base_url=base_url, timeout=120, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        await _wait_until_up(client)
        webhook = {"url": f"http://127.0.0.1:{agent_port}/"}
        agent = (await _post(client, CREATE_WEBHOOK, webhook))["createAgent"]["agent"]["id"]
        with tempfile.TemporaryDirectory() as folder:
            bodies = Path(folder) / "bodies.json"
            bodies.write_bytes(orjson.dumps(_bodies(agent, runs)))
            await asyncio.sleep(1.0)  # the processes settle after start-up
            pids = {watched.gateway, watched.executor}
            rss_before = _rss_kib(watched.executor)
            cpu_before = {pid: _cpu_seconds(pid) for pid in pids}
            peak_rss = rss_before

            async def sample() -> None:
                nonlocal peak_rss
                while True:
                    peak_rss = max(peak_rss, _rss_kib(watched.executor))
                    await asyncio.sleep(0.05)

            sampler = asyncio.create_task(sample())
            load = await asyncio.to_thread(
                generate,
                int(base_url.rsplit(":", 1)[1]),
                key,
                bodies,
                *("--rate", f"{CREATE_RATE:g}", "--seconds", f"{runs / CREATE_RATE:g}"),
                *("--connections", str(args.concurrency), "--grace", "300"),
            )
            if load["errors"] or load["answered"] != runs:
                raise RuntimeError(f"createRun failed: {load}")
            deadline = time.perf_counter() + 600
            while (await _post(client, UNFINISHED))["runs"]["totalCount"] > 0:
                if time.perf_counter() > deadline:
                    raise RuntimeError("runs did not finish within 600 s")
                await asyncio.sleep(0.05)
            sampler.cancel()
        cpu = {pid: _cpu_seconds(pid) - cpu_before[pid] for pid in pids}
        nodes = await _nodes(client)
        succeeded = [node for node in nodes if node["status"] == "SUCCESS"]
        if len(succeeded) != runs:
            failed = (await _post(client, FAILED))["runs"]["edges"]
            raise RuntimeError(f"{runs - len(succeeded)} runs did not succeed: {failed}")
    first = min(_stamp(node["createdAt"]) for node in succeeded)
    created = (max(_stamp(node["createdAt"]) for node in succeeded) - first).total_seconds()
    finished = (max(_stamp(node["completedAt"]) for node in succeeded) - first).total_seconds()
    queued = sorted(_seconds(node, "createdAt", "startedAt") for node in succeeded)
    executing = sorted(_seconds(node, "startedAt", "completedAt") for node in succeeded)
    most = _agent_stats(agent_port)["most"]
    figures: dict[str, Any] = {
        "first_create_to_last_success_s": round(finished, 2),
        "creates_answered_s": round(created, 2),
        "create_per_s": round(runs / max(created, 1e-3), 1),
        "peak_in_flight": most,
        "queued_p50_s": round(statistics.median(queued), 2),  # createdAt -> startedAt
        "queued_max_s": round(queued[-1], 2),
        "executing_p50_s": round(statistics.median(executing), 2),  # startedAt -> completedAt
        "executing_max_s": round(executing[-1], 2),
        "memory_per_in_flight_run_kib": round((peak_rss - rss_before) / max(1, most), 1),
        "executor_rss_before_mib": round(rss_before / 1024, 1),
        "executor_cpu_ms_per_run": round(cpu[watched.executor] * 1000 / runs, 2),
        "load_cpu_ms_per_run": load["cpu_ms_per_request"],
    }
    if watched.gateway != watched.executor:
        figures["gateway_cpu_ms_per_create"] = round(cpu[watched.gateway] * 1000 / runs, 2)
    return figures


def in_flight_main(args: argparse.Namespace) -> int:
    """(c): by default a gateway that executes nothing and one `runql worker` (both with
    default settings otherwise, as (b)'s per-worker figure); `--single-process`: one `runql
    serve` that answers the creates and executes the runs."""
    egress = {"RUNQL_EGRESS_ALLOWED_CIDRS": "127.0.0.0/8"}
    default = {**egress, "RUNQL_WORKERS": UNSET}  # what a process does unless told
    with _slow_agent(args.agent_seconds) as agent_port:
        if args.single_process:
            with _server(args.postgres, default) as (port, key, pid, _url):
                figures = asyncio.run(
                    _in_flight(
                        f"http://127.0.0.1:{port}", key, args, agent_port, _Watched(pid, pid)
                    )
                )
        else:
            with (
                _server(args.postgres, {**egress, "RUNQL_WORKERS": "0"}) as (port, key, pid, url),
                _worker(url, default) as worker,
            ):
                figures = asyncio.run(
                    _in_flight(
                        f"http://127.0.0.1:{port}", key, args, agent_port, _Watched(pid, worker)
                    )
                )
    figures.update(
        runs=args.in_flight,
        agent_seconds=args.agent_seconds,
        processes="one serve" if args.single_process else "gateway + one worker",
        database="postgresql" if args.postgres else "sqlite",
        loadavg=Path("/proc/loadavg").read_text().split()[0],
    )
    gateway = figures.get("gateway_cpu_ms_per_create")
    print(
        f"{args.in_flight} runs of a {args.agent_seconds:g} s webhook ({figures['processes']}): "
        f"first createRun to last SUCCESS {figures['first_create_to_last_success_s']} s "
        f"(createRuns answered in {figures['creates_answered_s']} s), "
        f"{figures['peak_in_flight']:g} in flight at most, "
        f"{figures['memory_per_in_flight_run_kib']} KiB each, "
        f"{figures['executor_cpu_ms_per_run']} ms of executing CPU per run"
        + (f", {gateway} ms of gateway CPU per create" if gateway is not None else "")
        + f", {figures['load_cpu_ms_per_run']} ms of the load generator's CPU per create"
    )
    print(orjson.dumps(figures).decode())
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run on a new database of this "
        "PostgreSQL server (e.g. postgresql://postgres@127.0.0.1:5432/test) "
        "instead of a SQLite file",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        metavar="N",
        help="measure N runs in flight against a slow loopback webhook",
    )
    parser.add_argument("--agent-seconds", type=float, default=2.0)
    parser.add_argument(
        "--single-process",
        action="store_true",
        help="(c) on one `runql serve` that answers the creates and executes the runs",
    )
    parser.add_argument("--slow-agent", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--rates", default=RATES, help=f"(a)'s open-loop rates per second (default {RATES})"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="(a)'s seconds a rate")
    parser.add_argument(
        "--part",
        choices=("all", "answered", "success"),
        default="all",
        help="(a) createRun answered beside the floor, (b) runs to SUCCESS, or both",
    )
    args = parser.parse_args()
    if args.slow_agent:
        return serve_slow_agent(args.slow_agent, args.agent_seconds)
    if args.in_flight:
        return in_flight_main(args)
    report: dict[str, Any] = {
        "database": "postgresql" if args.postgres else "sqlite",
        "loadavg": Path("/proc/loadavg").read_text().split()[0],
    }
    if args.part in ("all", "answered"):
        answered = answered_main(args)
        report["answered"] = answered
        for name in ("runql", "floor"):
            figures = answered[name]
            print(
                f"{name}: createRun answered at {figures['peak_per_s']}/s at most, "
                f"{figures['server_cpu_ms']} ms server CPU each (at {figures['cpu_at_rate']:g}/s),"
                f" p99 at 400/s {figures['p99_ms_at_400']} ms"
            )
    if args.part in ("all", "success"):
        report.update(success_main(args))
    print(orjson.dumps(report).decode())
    return 0


@contextmanager
def _worker(url: str, settings: dict[str, str]) -> Iterator[int]:
    """One `runql worker` process on the database, with production settings and `settings`,
    yielded (its pid) once it has started up and says so."""
    env = {**os.environ, "RUNQL_DATABASE_URL": url, "RUNQL_ENV": "production", **settings}
    env = {name: value for name, value in env.items() if value != UNSET}
    worker = subprocess.Popen(
        [sys.executable, "-m", "runql", "worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert worker.stdout is not None
        worker.stdout.readline()  # "runql: worker executing up to N runs at once; ..."
        yield worker.pid
    finally:
        worker.terminate()
        worker.wait(timeout=60)


async def _create_only(base_url: str, key: str, runs: int, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=60, limits=limits, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        await _wait_until_up(client)
        agent = (await _post(client, CREATE_AGENT))["createAgent"]["agent"]["id"]
        queue = list(range(runs))

        async def creator() -> None:
            while queue:
                index = queue.pop()
                await _post(client, CREATE, {"agent": agent, "text": f"message {index}"})

        await asyncio.gather(*(creator() for _ in range(concurrency)))


async def _executed(base_url: str, key: str, runs: int, pid: int) -> dict[str, float]:
    """Once no run is PENDING or RUNNING: runs to SUCCESS per second from the first start to
    the last end, and the worker's CPU per run since it started up."""
    before = _cpu_seconds(pid)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        deadline = time.perf_counter() + 300
        while (await _post(client, UNFINISHED))["runs"]["totalCount"] > 0:
            if time.perf_counter() > deadline:
                raise RuntimeError("runs did not finish within 300 s")
            await asyncio.sleep(0.05)
        cpu = _cpu_seconds(pid) - before
        nodes = await _nodes(client)
    succeeded = [node for node in nodes if node["status"] == "SUCCESS"]
    if len(succeeded) != runs:
        raise RuntimeError(f"{runs - len(succeeded)} runs did not succeed")
    first = min(_stamp(node["startedAt"]) for node in succeeded)
    last = max(_stamp(node["completedAt"]) for node in succeeded)
    return {
        "worker_executed_per_s": round(runs / max((last - first).total_seconds(), 1e-3), 1),
        "worker_cpu_ms_per_run": round(cpu * 1000 / runs, 2),
    }


def executed_main(args: argparse.Namespace) -> dict[str, float]:
    """(b) per worker process: `--runs` runs created first through a gateway that executes
    none (RUNQL_WORKERS=0), then executed by one `runql worker` with default settings."""
    with _server(args.postgres, {"RUNQL_WORKERS": "0"}) as (port, key, _pid, url):
        base = f"http://127.0.0.1:{port}"
        asyncio.run(_create_only(base, key, args.runs, args.concurrency))
        with _worker(url, {"RUNQL_WORKERS": UNSET}) as pid:
            figures = asyncio.run(_executed(base, key, args.runs, pid))
    print(
        f"one worker process, {args.runs} runs waiting: {figures['worker_executed_per_s']}/s to "
        f"SUCCESS, {figures['worker_cpu_ms_per_run']} ms of worker CPU per run"
    )
    return figures


def success_main(args: argparse.Namespace) -> dict[str, Any]:
    """(b): a burst of createRuns with `--workers` executing them, then runs one at a time."""
    settings = {"RUNQL_WORKERS": str(args.workers), "RUNQL_POLL_SECONDS": "0.5"}
    with _server(args.postgres, settings) as (port, key, _pid, _url):
        figures = asyncio.run(
            _measure(f"http://127.0.0.1:{port}", key, args.runs, args.concurrency)
        )
    print(
        f"burst of {args.runs}: createRun {figures['create_per_s']}/s answered, "
        f"{figures['complete_per_s']}/s to SUCCESS; createdAt -> completedAt p50 "
        f"{figures['to_success_p50_ms']} ms, p99 {figures['to_success_p99_ms']} ms (queued)"
    )
    print(
        f"one at a time: createdAt -> completedAt p50 "
        f"{figures['single_to_success_p50_ms']} ms, max {figures['single_to_success_max_ms']} ms"
    )
    return {
        **figures,
        **executed_main(args),
        "runs": args.runs,
        "concurrency": args.concurrency,
        "workers": args.workers,
    }


if __name__ == "__main__":
    sys.exit(main())
