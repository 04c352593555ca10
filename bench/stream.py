"""Benchmark of streaming runs followed live: token latency from a model server's send to a
subscriber's receipt.

A loopback OpenAI-compatible server (bench/chat_server.py, on a thread of this process) streams
`--tokens` tokens per request at `--tokens-per-s`, and records when it sent each one. It holds
every stream's first token until all runs are created and every socket has had its run's first
event (then, optionally, `--first-token-after` seconds more): every subscriber is in before
streaming starts, and the streams start together. A real `runql serve` with production settings
(pinned to core 0 when there are two cores or more; this process takes core 1) executes `--runs`
runs of an `openai` agent that points at it, all at once; `--subscribers` graphql-transport-ws
sockets per run follow each run with `runEvents(runId)` from its start. With `--processes 2`
(PostgreSQL) a second gateway serves the sockets while the first executes the runs
(RUNQL_WORKERS=0 on the second), so every event crosses processes by LISTEN/NOTIFY; gateway i
is pinned to core i, so with two cores the second gateway shares core 1 with this process (the
load generator and the model server), which the output says (`placement`).

Latency: each token is a known string, so a MESSAGE_DELTA at `offset` with `text` carries the
tokens whose last character falls in it; for each, receipt time (stamped when the bytes reach
this process, on the monotonic clock the server's thread also stamps with) minus the time the
server sent it. Streamed text is coalesced into a flush at most every 50 ms per run, so about
25 ms of every figure is by design.

Each socket's events are checked: sequence numbers from 1 with no gap or duplicate, and the
deltas concatenate to exactly the server's text ("exact").

Figures per configuration: p50/p99/max token latency; `steady_p99_ms`, the p99 of the tokens
sent a second or more after their stream's first (the streams start together, so their first
flushes, which store each reply's message group, come at once); `late_subscribers` (sockets
whose first event came after their run's first token: their early tokens were read from the log,
not live); delta events written per second; write commits per second (`write_commits_per_s`: the
gateways' runql_database_write_commits from /metrics, every write transaction they committed:
flushes, creations, transitions, lease renewals); database transactions per second
(`commits_per_s`, PostgreSQL only: pg_stat_database.xact_commit of the benchmark's database,
every transaction counted, reads included; the statistics are flushed by backends about once a
second, so short runs are approximate); the gateways' CPU (utime + stime from /proc, from the
first token to the last completion) per delta delivered to a socket; `bench_cpu_share`, the
cores this process (the model server's thread and every socket) used over the same window: near
1.0 it is saturated, and its own lag is in the latencies. The load average is read before and
after, and `core_speed_ms` before each configuration: the CPU time a fixed pure-Python loop
takes on the first gateway's core (bench/serve.py core_speed_ms), which moves with the machine's
own speed on a shared machine, and the gateway's CPU per delta with it. The last line printed is
JSON.

Usage: python bench/stream.py [--database sqlite|postgresql|both] [--processes 1,2]
       [--runs 100] [--subscribers 10] [--tokens 500] [--tokens-per-s 50]
       [--first-token-after 5] [--postgres postgresql://postgres@127.0.0.1:5432/test]
Scaled down for a loaded machine: --runs 20 --subscribers 2 --tokens 100
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.chat_server import ChatServer, Reply, Seen, serve_in_thread, text_of, token
from bench.scratch import scratch_database
from bench.serve import core_speed_ms, cpu_seconds, free_port, loadavg, runql_cli, wait_until_up
from bench.wsclient import Subscriber, Window, open_subscriber

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "RUNQL_BENCH_OPENAI_KEY"
SERVER_CORE, CLIENT_CORE = 0, 1
CREATE_AGENT = """mutation($config: JSON) { createAgent(input: {name: "Stream", kind: "openai",
  config: $config}) { agent { id } } }"""
CREATE_RUN = """mutation($a: ID!, $text: String!) {
  createRun(input: {agentId: $a, content: {text: $text}}) { run { id } } }"""
RUN_EVENTS = "subscription($id: ID!) { runEvents(runId: $id) { seq type payload createdAt } }"
MESSAGE_DELTA = "MESSAGE_DELTA"
CREATING = 10  # runs created at once
STEADY_AFTER_S = 1.0  # steady_p99_ms leaves out the tokens of each stream's first second


@dataclass(frozen=True)
class Shape:
    runs: int
    subscribers: int
    tokens: int
    tokens_per_s: float
    first_token_after: float


def _environment(url: str, executes: int) -> dict[str, str]:
    return {
        **os.environ,
        "RUNQL_DATABASE_URL": url,
        "RUNQL_ENV": "production",
        "RUNQL_WORKERS": str(executes),
        "RUNQL_GRAPHIQL": "0",
        "RUNQL_SERVE_WORKERS": "1",
        "RUNQL_RATE_LIMIT_PER_SECOND": "1000000",
        "RUNQL_RATE_LIMIT_BURST": "1000000",
        "RUNQL_EGRESS_ALLOWED_CIDRS": "127.0.0.0/8",
        KEY_ENV: "sk-bench",
    }


# The cores this benchmark may use, read before main() pins this process to CLIENT_CORE: a
# gateway started after that would inherit CLIENT_CORE alone, unless pinned explicitly.
CORES = frozenset(os.sched_getaffinity(0))


def _pinned() -> bool:
    return {SERVER_CORE, CLIENT_CORE} <= CORES


def _cores(gateways: int) -> list[int | None]:
    """The core each gateway is pinned to: gateway i on core i (SERVER_CORE for the first),
    none (unpinned) when this benchmark may not use both SERVER_CORE and CLIENT_CORE."""
    if not _pinned() or gateways > 2:
        return [None] * gateways
    cores: list[int | None] = [SERVER_CORE, CLIENT_CORE]
    return cores[:gateways]


def placement(gateways: int) -> str:
    """Where the gateways and this process (the load generator and the model server) run."""
    cores = _cores(gateways)
    if cores[0] is None:
        return "unpinned"
    said = ", ".join(f"gateway {index + 1} on core {core}" for index, core in enumerate(cores))
    shared = [index + 1 for index, core in enumerate(cores) if core == CLIENT_CORE]
    bench = f"this benchmark (load generator and model server) on core {CLIENT_CORE}"
    if shared:
        bench += f", shared with gateway {shared[0]}"
    return f"{said}; {bench}"


@contextmanager
def _gateways(environments: Sequence[dict[str, str]]) -> Iterator[list[tuple[int, int]]]:
    """One `runql serve` per environment (gateway i on core i when there are two cores or
    more: _cores): port and pid."""
    started: list[tuple[int, subprocess.Popen[bytes], IO[bytes]]] = []
    with ExitStack() as logs:
        try:
            for environment, core in zip(environments, _cores(len(environments)), strict=True):
                port = free_port()
                written: IO[bytes] = logs.enter_context(tempfile.TemporaryFile())
                command = [sys.executable, "-m", "runql", "serve", "--port", str(port)]
                pin = [] if core is None else ["taskset", "-c", str(core)]
                process = subprocess.Popen(
                    [*pin, *command],
                    env=environment,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=written,
                )
                started.append((port, process, written))
            for port, process, written in started:
                wait_until_up(port, process, written)
            yield [(port, process.pid) for port, process, _written in started]
        finally:
            for _port, process, _written in started:
                process.send_signal(signal.SIGTERM)
            for _port, process, _written in started:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


async def _commits(postgres_url: str | None) -> int | None:
    if postgres_url is None:
        return None
    connection = await asyncpg.connect(postgres_url.replace("+asyncpg", "", 1))
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        found = await connection.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(found)
    finally:
        await connection.close()


async def _write_commits(http: httpx.AsyncClient, ports: Sequence[int]) -> int:
    """The gateways' write transactions committed so far (runql_database_write_commits)."""
    total = 0
    for port in ports:
        exposition = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        for line in exposition.splitlines():
            if line.startswith("runql_database_write_commits_total "):
                total += int(float(line.split()[1]))
    return total


def _cpu(pids: Sequence[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


class Client:
    def __init__(self, port: int, key: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=60,
            headers={"Authorization": f"Bearer {key}"},
        )

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await self.http.post("/graphql", json={"query": query, "variables": variables})
        document = body.json()
        if document.get("errors"):
            raise RuntimeError(document["errors"])
        return document["data"]  # type: ignore[no-any-return]


async def _create_run(client: Client, agent: str, index: int) -> str:
    created = await client.gql(CREATE_RUN, {"a": agent, "text": _marker(index)})
    return str(created["createRun"]["run"]["id"])


async def _until_heard(sockets: Sequence[Subscriber], within: float) -> None:
    """Until every socket has had its run's first event: all are subscribed."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(socket.heard for socket in sockets):
            return
        await asyncio.sleep(0.01)
    raise RuntimeError(f"not every socket heard its run's first event within {within:g} s")


def _marker(index: int) -> str:
    return f"stream-run-{index}"


def _request_of(chat: ChatServer, index: int) -> Seen:
    marker = _marker(index)
    return next(seen for seen in chat.seen if marker in json.dumps(seen.body["messages"]))


@dataclass
class Followed:
    """What the sockets of one run received, checked and turned into latencies."""

    latencies: list[float]
    steady: list[float]  # the latencies of tokens sent a second or more into their stream
    to_commit: list[float]  # per token: from its send to its event's createdAt (the commit)
    deltas: int
    delta_events: int
    exact: bool
    late: int


def _monotonic(stamp: str) -> float:
    """A createdAt (wall clock) on this process's monotonic clock."""
    wall = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return wall - (time.time() - time.monotonic())


def _follow(sockets: Sequence[Subscriber], seen: Seen, tokens: int) -> Followed:
    expected = text_of(tokens)
    ends = list(accumulate(len(token(index)) for index in range(tokens)))
    latencies: list[float] = []
    steady: list[float] = []
    to_commit: list[float] = []
    delta_seqs: set[int] = set()
    exact, deltas, late = True, 0, 0
    for socket in sockets:
        events = [data["runEvents"] for _arrived, data in socket.arrivals]
        exact &= [event["seq"] for event in events] == list(range(1, len(events) + 1))
        if socket.arrivals and seen.sent and socket.arrivals[0][0] > seen.sent[0]:
            late += 1
        text: list[str] = []
        length = 0
        for arrived, data in socket.arrivals:
            event = data["runEvents"]
            if event["type"] != MESSAGE_DELTA:
                continue
            deltas += 1
            delta_seqs.add(event["seq"])
            offset, piece = event["payload"]["offset"], event["payload"]["text"]
            exact &= offset == length
            text.append(piece)
            length += len(piece)
            first = bisect.bisect_right(ends, offset)
            last = bisect.bisect_right(ends, offset + len(piece))
            latencies += [(arrived - seen.sent[k]) * 1000 for k in range(first, last)]
            steady += [
                (arrived - seen.sent[k]) * 1000
                for k in range(first, last)
                if seen.sent[k] >= seen.sent[0] + STEADY_AFTER_S
            ]
            stamped = _monotonic(event["createdAt"])
            to_commit += [(stamped - seen.sent[k]) * 1000 for k in range(first, last)]
        exact &= "".join(text) == expected
    return Followed(latencies, steady, to_commit, deltas, len(delta_seqs), exact, late)


async def _until_streaming(chat: ChatServer, runs: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if len(chat.seen) >= runs and all(seen.sent for seen in chat.seen):
            return
        await asyncio.sleep(0.005)
    raise RuntimeError(f"the runs did not all start streaming within {within:g} s")


async def _measure(
    shape: Shape,
    chat: ChatServer,
    held: threading.Event,
    base_url: str,
    key: str,
    gateways: list[tuple[int, int]],
    postgres_url: str | None,
) -> dict[str, Any]:
    executing, following = gateways[0][0], gateways[-1][0]
    pids = [pid for _port, pid in gateways]
    ports = [port for port, _pid in gateways]
    client = Client(executing, key)
    config = {"base_url": base_url, "model": "bench", "api_key_env": KEY_ENV}
    created = await client.gql(CREATE_AGENT, {"config": config})
    agent = created["createAgent"]["agent"]["id"]
    sockets: list[Subscriber] = []
    while len(sockets) < shape.runs * shape.subscribers:
        batch = min(200, shape.runs * shape.subscribers - len(sockets))
        sockets += await asyncio.gather(
            *(open_subscriber("127.0.0.1", following, key, time.monotonic) for _ in range(batch))
        )
    window = Window(len(sockets), b'"complete"')
    for socket in sockets:
        socket.open_window(window)
    run_ids = []
    for start in range(0, shape.runs, CREATING):
        run_ids += await asyncio.gather(
            *(
                _create_run(client, agent, index)
                for index in range(start, min(start + CREATING, shape.runs))
            )
        )
    for index, run_id in enumerate(run_ids[: shape.runs]):
        for socket in sockets[index * shape.subscribers : (index + 1) * shape.subscribers]:
            socket.subscribe(run_id, RUN_EVENTS, {"id": run_id})
    await _until_heard(sockets, within=120)
    streaming = shape.tokens / shape.tokens_per_s
    gc.collect()
    gc.disable()  # this client's collections would delay its stamps
    try:
        held.set()
        # for whoever profiles the gateway over the window (py-spy): it starts now
        print("every socket is subscribed; the streams start", file=sys.stderr, flush=True)
        await _until_streaming(chat, shape.runs, shape.first_token_after + 60)
        started, cpu_before, own_before = time.monotonic(), _cpu(pids), _own_cpu()
        commits_before = await _commits(postgres_url)
        writes_before = await _write_commits(client.http, ports)
        await asyncio.wait_for(window.done.wait(), streaming + 120)
        seconds, cpu = time.monotonic() - started, _cpu(pids) - cpu_before
        own = _own_cpu() - own_before
        commits_after = await _commits(postgres_url)
        writes_after = await _write_commits(client.http, ports)
    finally:
        gc.enable()
        for socket in sockets:
            socket.close_window()
            socket.close()
    await client.http.aclose()
    followed = [
        _follow(
            sockets[index * shape.subscribers : (index + 1) * shape.subscribers],
            _request_of(chat, index),
            shape.tokens,
        )
        for index in range(shape.runs)
    ]
    latencies = sorted(latency for run in followed for latency in run.latencies)
    steady = sorted(latency for run in followed for latency in run.steady)
    deltas = sum(run.deltas for run in followed)
    to_commit = sorted(latency for run in followed for latency in run.to_commit)
    commits = (
        None
        if commits_before is None or commits_after is None
        else round((commits_after - commits_before) / seconds, 1)
    )
    return {
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(_percentile(latencies, 0.99), 1) if latencies else None,
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "steady_p99_ms": round(_percentile(steady, 0.99), 1) if steady else None,
        "to_commit_p50_ms": round(statistics.median(to_commit), 1) if to_commit else None,
        "to_commit_p99_ms": round(_percentile(to_commit, 0.99), 1) if to_commit else None,
        "tokens_received": len(latencies),
        "tokens_expected": shape.runs * shape.subscribers * shape.tokens,
        "exact": all(run.exact for run in followed),
        "late_subscribers": sum(run.late for run in followed),
        "deltas_delivered": deltas,
        "delta_events_per_s": round(sum(run.delta_events for run in followed) / seconds, 1),
        "commits_per_s": commits,
        "write_commits_per_s": round((writes_after - writes_before) / seconds, 1),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_ms_per_delta": round(cpu * 1000 / deltas, 4) if deltas else None,
        # this process (the model server's thread and every socket) over the window, in cores:
        # near 1.0 it is saturated and its own lag is in the latencies
        "bench_cpu_share": round(own / seconds, 2),
        "seconds": round(seconds, 2),
    }


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def measure(database: str, processes: int, shape: Shape, postgres: str) -> dict[str, Any]:
    """One configuration: a fresh database, its gateway(s), the chat server, the sockets."""
    server = postgres if database == "postgresql" else None
    held = threading.Event()  # no token before every socket is subscribed
    chat = ChatServer(
        Reply(
            tokens=shape.tokens,
            tokens_per_s=shape.tokens_per_s,
            first_token_after_s=shape.first_token_after,
            held=held,
        )
    )
    speed = core_speed_ms(_cores(1)[0])  # on the first gateway's core, before it starts
    chat_server, base_url = serve_in_thread(chat)
    try:
        with tempfile.TemporaryDirectory() as folder, scratch_database(server, folder) as url:
            executes = _environment(url, shape.runs)
            runql_cli(executes, "migrate")
            key = runql_cli(executes, "keys", "create", "--name", "stream").strip().splitlines()[-1]
            follows = _environment(url, 0)
            with (
                _gateways([executes] if processes == 1 else [executes, follows]) as gateways,
                asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
            ):
                figures = runner.run(
                    _measure(
                        shape, chat, held, base_url, key, gateways, None if server is None else url
                    )
                )
    finally:
        chat_server.should_exit = True
    return {
        "database": database,
        "processes": processes,
        "placement": placement(processes),
        "core_speed_ms": speed,
        **figures,
    }


def _configurations(databases: str, processes: list[int]) -> list[tuple[str, int]]:
    chosen = ["sqlite", "postgresql"] if databases == "both" else [databases]
    return [
        (database, count)
        for database in chosen
        for count in processes
        if count == 1 or database == "postgresql"  # two gateways: across LISTEN/NOTIFY
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--processes", default="1,2", help="1, 2 (PostgreSQL only) or 1,2")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--subscribers", type=int, default=10, help="sockets per run")
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--tokens-per-s", type=float, default=50.0)
    parser.add_argument(
        "--first-token-after",
        type=float,
        default=0.0,
        help="seconds from a request (or from the release once all sockets are in) to its "
        "first token",
    )
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    shape = Shape(
        args.runs, args.subscribers, args.tokens, args.tokens_per_s, args.first_token_after
    )
    if _pinned():
        os.sched_setaffinity(0, {CLIENT_CORE})
    with suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    before = loadavg()
    results = []
    processes = [int(count) for count in args.processes.split(",")]
    for database, count in _configurations(args.database, processes):
        result = measure(database, count, shape, args.postgres)
        results.append(result)
        print(
            f"{database}, {count} gateway(s): token latency p50 {result['p50_ms']} ms, p99 "
            f"{result['p99_ms']} ms, max {result['max_ms']} ms (p99 after each stream's first "
            f"second {result['steady_p99_ms']} ms); exact {result['exact']}; "
            f"{result['write_commits_per_s']} write commits/s ({result['commits_per_s']} "
            f"transactions/s); {result['server_cpu_ms_per_delta']} ms "
            f"server CPU per delta delivered; this benchmark used {result['bench_cpu_share']} "
            f"of a core; {result['placement']}; speed probe {result['core_speed_ms']} ms",
            flush=True,
        )
    report = {
        "runs": shape.runs,
        "subscribers_per_run": shape.subscribers,
        "tokens": shape.tokens,
        "tokens_per_s": shape.tokens_per_s,
        "results": results,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
