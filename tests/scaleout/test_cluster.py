"""Two gateways and two workers on one PostgreSQL database: runs created through either
gateway, followed through the other, a worker killed in the middle. Nothing is lost, nothing
is repeated, no agent runs twice."""

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.backends import POSTGRES_SERVER, PostgresBackend
from tests.processes import free_port
from tests.subscriptions.client import GraphQLSocket

ROOT = Path(__file__).resolve().parents[2]
RUNS = 200
RUN_EVENTS = "subscription($id: ID!) { runEvents(runId: $id) { seq type payload } }"
CREATE_AGENT = """mutation($url: String!) { createAgent(input: {name: "Hook", kind: "webhook",
  config: {url: $url, timeout_s: 20, retries: 0}}) { agent { id } } }"""
CREATE_RUN = """mutation($agent: ID!, $text: String!) {
  createRun(input: {agentId: $agent, content: {text: $text}}) { run { id } } }"""


@pytest.fixture
async def postgres(tmp_path: Path) -> AsyncIterator[str]:
    why = await PostgresBackend.reachable()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI and not reachable: {why}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_SERVER} ({why})")
    backend = PostgresBackend()
    url = await asyncio.to_thread(backend.template, "cluster")
    yield url
    await asyncio.to_thread(backend.close)


@dataclass
class Agent:
    """A webhook agent's far end: counts how often each run reaches it."""

    calls: Counter[str]
    url: str
    called: asyncio.Event

    async def reached(self, total: int) -> None:
        while sum(self.calls.values()) < total:
            self.called.clear()
            await self.called.wait()


@pytest.fixture
async def agent_endpoint() -> AsyncIterator[Agent]:
    calls: Counter[str] = Counter()
    called = asyncio.Event()

    async def reply(request: Request) -> JSONResponse:
        calls[request.headers["idempotency-key"]] += 1
        called.set()
        await asyncio.sleep(random.uniform(0.1, 0.4))
        return JSONResponse({"text": "done"})

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/", reply, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    yield Agent(calls, f"http://127.0.0.1:{port}/", called)
    server.should_exit = True
    await task


def _spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "runql", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _post(
    client: httpx.AsyncClient, url: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    body = (await client.post(url, json={"query": query, "variables": variables})).json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def _follow(ws_url: str, key: str, run_id: str) -> list[dict[str, Any]]:
    socket = await GraphQLSocket.open(ws_url, key)
    try:
        outcome = await socket.collect(await socket.start(RUN_EVENTS, {"id": run_id}), seconds=120)
    finally:
        await socket.close()
    assert outcome.errors == []
    assert outcome.completed
    return [item["runEvents"] for item in outcome.data]


async def test_two_gateways_two_workers_and_a_killed_worker_lose_nothing(
    postgres: str, agent_endpoint: Agent
) -> None:
    env = {
        **os.environ,
        "RUNQL_DATABASE_URL": postgres,
        "RUNQL_ENV": "production",
        "RUNQL_WORKERS": "0",
        "RUNQL_LEASE_SECONDS": "2",
        "RUNQL_POLL_SECONDS": "0.2",
        "RUNQL_WS_MAX_SUBSCRIPTIONS": "500",
        "RUNQL_EGRESS_ALLOWED_CIDRS": "127.0.0.0/8",
    }
    made = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "runql", "keys", "create", "--name", "c"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    ports = [free_port(), free_port()]
    gateways = [_spawn(env, "serve", "--port", str(port)) for port in ports]
    workers = [_spawn(env, "worker", "--concurrency", "4") for _ in range(2)]
    urls = [f"http://127.0.0.1:{port}/graphql" for port in ports]
    sockets = [f"ws://127.0.0.1:{port}/graphql" for port in ports]
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            for url in urls:
                for _ in range(300):
                    try:
                        await client.get(url.replace("/graphql", "/"))
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
            agent = (await _post(client, urls[0], CREATE_AGENT, {"url": agent_endpoint.url}))[
                "createAgent"
            ]["agent"]["id"]

            async def one(index: int) -> tuple[str, list[dict[str, Any]]]:
                via = random.randrange(2)
                data = await _post(
                    client, urls[via], CREATE_RUN, {"agent": agent, "text": f"run {index}"}
                )
                run_id = data["createRun"]["run"]["id"]
                return run_id, await _follow(sockets[1 - via], key, run_id)

            followers = [asyncio.create_task(one(index)) for index in range(RUNS)]
            await asyncio.wait_for(agent_endpoint.reached(RUNS // 3), 120)
            workers[0].send_signal(signal.SIGKILL)
            results = await asyncio.wait_for(asyncio.gather(*followers), 240)
    finally:
        for process in gateways + workers:
            if process.poll() is None:
                process.terminate()
        for process in gateways + workers:
            process.wait(timeout=30)

    endings: Counter[str] = Counter()
    for run_id, events in results:
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1)), run_id
        statuses = [e["payload"]["status"] for e in events if e["type"] == "STATUS_CHANGED"]
        assert statuses[:2] == ["pending", "running"], (run_id, statuses)
        assert len(statuses) == 3
        assert statuses[2] in ("success", "error")
        endings[statuses[2]] += 1
        assert agent_endpoint.calls[run_id] <= 1, f"{run_id}'s agent ran twice"
        if statuses[2] == "success":
            assert agent_endpoint.calls[run_id] == 1
    assert len({run_id for run_id, _ in results}) == RUNS
    # The killed worker held runs (it had four slots busy): their leases expired and the
    # surviving worker recorded them as errors; every other run succeeded.
    assert 1 <= endings["error"] <= 4, endings
    assert endings["success"] == RUNS - endings["error"]
