"""A real `runql serve`: its log lines are JSON with request ids, its metrics count open
websockets and active subscriptions, and with RUNQL_OTEL=1 it exports traces over OTLP/HTTP."""

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.operations.helpers import sample
from tests.operations.live import LiveServer, live_server
from tests.processes import free_port

ECHO = "{ agents(first: 20) { edges { node { id name } } } }"
CREATE = (
    "mutation CreateLive($agent: ID!) { createRun(input: {agentId: $agent, "
    'content: {text: "hi"}}) { run { id status } } }'
)
WATCH = "subscription Watch($id: ID!) { runStatus(id: $id) { id status } }"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    # Production, JSON logs (the default), no workers: a new run stays PENDING, watched.
    with live_server(tmp_path, demo_runs=5, WORKERS="0") as running:
        yield running


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def _gauges(server: LiveServer) -> tuple[float | None, float | None]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{server.base}/metrics")).text
    return (
        sample(text, "runql_websockets_open"),
        sample(text, "runql_subscriptions_active", subscription="runStatus"),
    )


async def _eventually(server: LiveServer, expected: tuple[float, float]) -> None:
    for _ in range(100):
        if await _gauges(server) == expected:
            return
        await asyncio.sleep(0.05)
    assert await _gauges(server) == expected


async def _subscribe(socket: ClientConnection, key: str, run_id: str) -> dict[str, Any]:
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}})
    )
    assert json.loads(await socket.recv())["type"] == "connection_ack"
    await socket.send(
        json.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": WATCH, "operationName": "Watch", "variables": {"id": run_id}},
            }
        )
    )
    return json.loads(await socket.recv())  # type: ignore[no-any-return]


def _new_run(server: LiveServer, request_id: str) -> httpx.Response:
    agent = next(
        e["node"]["id"] for e in server.data(ECHO)["agents"]["edges"] if e["node"]["name"] == "Echo"
    )
    return server.post(CREATE, {"agent": agent}, headers={"X-Request-ID": request_id})


async def test_open_websockets_and_subscriptions_are_gauged(server: LiveServer) -> None:
    run_id = _new_run(server, "live-ws-1").json()["data"]["createRun"]["run"]["id"]
    assert await _gauges(server) == (0, None)

    async with connect(
        server.graphql_url.replace("http", "ws"),
        proxy=None,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    ) as socket:
        first = await _subscribe(socket, server.key, run_id)
        assert first["payload"]["data"]["runStatus"]["status"] == "PENDING"
        await _eventually(server, (1, 1))
        await socket.send(json.dumps({"id": "1", "type": "complete"}))
        await _eventually(server, (1, 0))
    await _eventually(server, (0, 0))


def test_log_lines_are_json_with_the_request_id(server: LiveServer) -> None:
    response = _new_run(server, "live-logs-1")
    assert response.headers["x-request-id"] == "live-logs-1"

    lines = _lines(server.stop()["stderr"])  # every line must parse

    access = [line for line in lines if line.get("request_id") == "live-logs-1"]
    assert len(access) == 1
    assert access[0]["logger"] == "runql.access"
    assert access[0]["level"] == "info"
    assert access[0]["message"] == "POST /graphql 200"
    assert access[0]["operation"] == "CreateLive"
    assert access[0]["status"] == 200
    assert access[0]["sql_statements"] > 0
    assert any(
        line["logger"] == "uvicorn.error" and "Uvicorn running on" in line["message"]
        for line in lines
    )
    assert not any(line["logger"] == "uvicorn.access" for line in lines)


class _Collector(BaseHTTPRequestHandler):
    """A stand-in OpenTelemetry collector on loopback: keeps what is posted to /v1/traces."""

    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            self.received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []
    handler = type("Collector", (_Collector,), {"received": received})
    http = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}", received
    finally:
        http.shutdown()
        http.server_close()
        thread.join()


def test_with_runql_otel_traces_go_out_over_otlp(
    tmp_path: Path, collector: tuple[str, list[bytes]]
) -> None:
    trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    endpoint, received = collector
    exporter = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with live_server(tmp_path, demo_runs=5, environ=exporter, WORKERS="0", OTEL="1") as server:
        server.post("query Exported { runs(first: 2) { totalCount } }")
        names: set[str] = set()
        deadline = time.monotonic() + 20
        while "query Exported" not in names and time.monotonic() < deadline:
            time.sleep(0.1)
            for body in list(received):
                request = trace_service.ExportTraceServiceRequest.FromString(body)
                names |= {
                    span.name
                    for resource in request.resource_spans
                    for scope in resource.scope_spans
                    for span in scope.spans
                }

    assert "query Exported" in names
    assert "SELECT" in names
