"""The load generator of bench/serve.py: HTTP/1.1 POSTs at a fixed arrival rate (open loop).

Request i is due at start + i / rate whatever the answers do; its latency is taken from that due
time to the end of its response, so a server that falls behind shows its queue in the figures.
Requests go over keep-alive connections (raw asyncio protocols on uvloop, httptools parsing the
responses): an idle connection takes the next due request; when all are busy a new one opens,
up to `--connections`; beyond that requests wait for a connection (and their latency grows).
The bodies are read from a JSON file (a list of strings) and rotated over.

`--serial N` instead sends N requests one at a time on one connection (the latency of a
request alone).

Prints one JSON line: {"rate", "seconds", "sent", "answered", "achieved_rate" (answers over the
seconds from the first due time to the last answer), "p50_ms",
"p90_ms", "p99_ms", "max_ms", "errors", "connections", "cpu_ms_per_request" (the generator's
own), "last_body" (its first 200 characters)}; `errors` counts non-2xx answers,
broken connections and requests unanswered `--grace` seconds after the last was due.

Usage: python bench/openloop.py --port P --key SECRET --bodies FILE (--rate R --seconds S |
       --serial N) [--path /graphql] [--connections 64] [--grace 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httptools
import orjson
import uvloop


def requests(path: str, port: int, key: str, bodies: list[str]) -> list[bytes]:
    """Each body as a complete HTTP/1.1 request."""
    built = []
    for body in bodies:
        data = body.encode()
        built.append(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
    return built


class Connection(asyncio.Protocol):
    """One keep-alive connection: one request in flight at a time."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.due = 0.0
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.body.clear()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.load.broken(self)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.load.answered(self, self.parser.get_status_code(), b"".join(self.body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.broken(self)


class Load:
    """The schedule, the connections and the latencies of one step."""

    def __init__(self, port: int, requests: list[bytes], limit: int) -> None:
        self.port = port
        self.requests = requests
        self.limit = limit
        self.idle: list[Connection] = []
        self.busy: set[Connection] = set()
        self.opening = 0
        self.waiting: deque[tuple[bytes, float]] = deque()
        self.latencies: list[float] = []
        self.errors = 0
        self.opened = 0
        self.last_body = b""
        self.done = asyncio.Event()
        self.expected = 0
        self.last_answer = 0.0

    def submit(self, request: bytes, due: float) -> None:
        if self.idle:
            connection = self.idle.pop()
            self.busy.add(connection)
            connection.send(request, due)
            return
        self.waiting.append((request, due))
        if len(self.busy) + self.opening < self.limit:
            self.opening += 1
            asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: Connection(self), "127.0.0.1", self.port
            )
        except OSError:
            self.opening -= 1
            self.errors += 1
            return
        self.opening -= 1
        self.opened += 1
        self._next(connection)

    def _next(self, connection: Connection) -> None:
        if self.waiting:
            request, due = self.waiting.popleft()
            self.busy.add(connection)
            connection.send(request, due)
        else:
            self.busy.discard(connection)
            self.idle.append(connection)

    def answered(self, connection: Connection, status: int, body: bytes) -> None:
        self.last_answer = time.perf_counter()
        self.latencies.append(self.last_answer - connection.due)
        if not 200 <= status < 300:
            self.errors += 1
        self.last_body = body
        self._finish_one()
        self._next(connection)

    def broken(self, connection: Connection) -> None:
        if connection in self.busy:
            self.busy.discard(connection)
            self.errors += 1
            self._finish_one()
        if connection in self.idle:
            self.idle.remove(connection)

    def _finish_one(self) -> None:
        if len(self.latencies) + self.errors >= self.expected:
            self.done.set()

    def close(self) -> None:
        for connection in [*self.idle, *self.busy]:
            if connection.transport is not None:
                connection.transport.close()


async def open_loop(load: Load, rate: float, seconds: float, grace: float) -> float:
    """Submit requests on the schedule; the seconds from the first due time to the last
    answer, plus one slot (so that a server that keeps up achieves the rate, not more)."""
    total = max(1, math.floor(rate * seconds))
    load.expected = total
    start = time.perf_counter() + 0.05
    for index in range(total):
        due = start + index / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        elif index % 16 == 0:  # behind: still read the answers now and then
            await asyncio.sleep(0)
        load.submit(load.requests[index % len(load.requests)], due)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(load.done.wait(), grace)
    return max(load.last_answer - start, 0.0) + 1 / rate


async def serial(load: Load, count: int) -> None:
    load.limit = 1
    for index in range(count):
        load.expected = index + 1
        load.done.clear()
        load.submit(load.requests[index % len(load.requests)], time.perf_counter())
        await asyncio.wait_for(load.done.wait(), 30)


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


async def generate(args: argparse.Namespace, bodies: list[str]) -> dict[str, Any]:
    load = Load(args.port, requests(args.path, args.port, args.key, bodies), args.connections)
    gc.disable()  # the generator's own pauses would show as the server's latency
    cpu = time.process_time()
    try:
        if args.serial:
            await serial(load, args.serial)
            span = 0.0
        else:
            span = await open_loop(load, args.rate, args.seconds, args.grace)
    finally:
        load.close()
    cpu = time.process_time() - cpu
    ordered = sorted(load.latencies)
    sent = load.expected if not args.serial else args.serial
    unanswered = sent - len(ordered) - load.errors
    return {
        "rate": args.rate,
        "seconds": args.seconds,
        "sent": sent,
        "answered": len(ordered),
        "achieved_rate": round(len(ordered) / span, 1) if span else None,
        "p50_ms": round(percentile(ordered, 0.5) * 1000, 3),
        "p90_ms": round(percentile(ordered, 0.9) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3) if ordered else 0.0,
        "errors": load.errors + max(0, unanswered),
        "connections": load.opened,
        "cpu_ms_per_request": round(cpu * 1000 / max(1, len(ordered)), 4),
        "last_body": load.last_body.decode(errors="replace")[:200],
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/graphql")
    parser.add_argument("--key", required=True)
    parser.add_argument("--bodies", required=True, help="a JSON file: a list of bodies")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--serial", type=int, default=0, help="send this many requests one at a time instead"
    )
    parser.add_argument("--connections", type=int, default=64, help="at most (default 64)")
    parser.add_argument(
        "--grace",
        type=float,
        default=2.0,
        help="seconds to wait for answers after the last due time",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    report = uvloop.run(generate(args, orjson.loads(Path(args.bodies).read_bytes())))
    print(orjson.dumps(report).decode(), flush=True)


if __name__ == "__main__":
    main()
