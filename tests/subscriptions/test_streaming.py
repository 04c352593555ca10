"""Following a streaming agent's run: MESSAGE_DELTA events that add up to the stored text,
and a subscriber that resumes with `after` anywhere, during the stream or after it, gets
exactly the text it missed: on a real server, with the executor in the server's process or in
a worker process of its own."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runql.agents import catalog
from runql.agents.registry import default_registry
from runql.storage.tables import DEFAULT_ORG_ID, AgentRow
from tests.subscriptions.client import GraphQLSocket
from tests.subscriptions.conftest import Live

ROOT = Path(__file__).resolve().parents[2]
NODE_CLIENT = Path(__file__).with_name("graphql_ws_client.mjs")
TEXT = " ".join(f"word{index}" for index in range(30)) + "."
RUN_EVENTS = """subscription($id: ID!, $after: Int) {
  runEvents(runId: $id, after: $after) { seq type payload } }"""
STORED = """query($id: ID!) { run(id: $id) { status messageGroup { status
  messages { id status content { parts { text } } } } } }"""
NODE = """query($id: ID!) { node(id: $id) { ... on Message { id content { parts { text } } } } }"""

Event = dict[str, Any]


async def _typist(live: Live, stream_delay_ms: int = 20) -> AgentRow:
    return await catalog.create_agent(
        live.database,
        default_registry(),
        DEFAULT_ORG_ID,
        name="Typist",
        kind="echo",
        config={"delay_ms": 0, "stream_delay_ms": stream_delay_ms},
    )


async def _events(
    live: Live, run_id: str, after: int | None = None, until: int | None = None
) -> list[Event]:
    socket = await GraphQLSocket.open(live.ws_url, live.key)
    try:
        operation = await socket.start(RUN_EVENTS, {"id": run_id, "after": after})
        outcome = await socket.collect(operation, until=until, seconds=30)
    finally:
        await socket.close()
    assert outcome.errors == []
    assert outcome.completed or until is not None
    return [item["runEvents"] for item in outcome.data]


def _text(events: list[Event]) -> str:
    """The streamed text the events carry, checked to have no gap and no overlap."""
    text = ""
    for event in events:
        if event["type"] == "MESSAGE_DELTA":
            assert event["payload"]["offset"] == len(text), (event, text)
            text += event["payload"]["text"]
    return text


def _resumed(before: str, events: list[Event]) -> str:
    """`before` and the deltas of `events`, which must start where `before` ends."""
    deltas = [event["payload"] for event in events if event["type"] == "MESSAGE_DELTA"]
    for delta in deltas:
        assert delta["offset"] == len(before), (delta, before)
        before += delta["text"]
    return before


async def _stored(live: Live, run_id: str) -> tuple[str, str, str, str]:
    """The run's status, its reply's status, its message's id and text."""
    run = (await live.gql(STORED, {"id": run_id}))["run"]
    [message] = run["messageGroup"]["messages"]
    [part] = message["content"]["parts"]
    return run["status"], run["messageGroup"]["status"], message["id"], part["text"]


async def test_the_deltas_add_up_to_the_stored_message(live: Live) -> None:
    run_id = await live.create_run(TEXT, await _typist(live))
    events = await _events(live, run_id)
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    kinds = [event["type"] for event in events]
    assert kinds[:3] == ["STATUS_CHANGED", "STATUS_CHANGED", "MESSAGE_ADDED"]
    assert kinds.count("MESSAGE_DELTA") > 3  # it streamed in pieces
    assert events[-1]["payload"] == {"status": "success"}
    status, group_status, message_id, stored = await _stored(live, run_id)
    assert (status, group_status) == ("SUCCESS", "COMPLETED")
    assert _text(events) == stored == TEXT
    delta = next(event for event in events if event["type"] == "MESSAGE_DELTA")
    assert delta["payload"]["message_id"] == message_id
    node = (await live.gql(NODE, {"id": message_id}))["node"]
    assert node["content"]["parts"] == [{"text": TEXT}]


async def test_resuming_after_any_event_gives_exactly_the_missing_text(live: Live) -> None:
    run_id = await live.create_run(TEXT, await _typist(live, stream_delay_ms=5))
    events = await _events(live, run_id)
    socket = await GraphQLSocket.open(live.ws_url, live.key)
    try:
        for seq in range(len(events) + 1):
            operation = await socket.start(RUN_EVENTS, {"id": run_id, "after": seq})
            outcome = await socket.collect(operation, seconds=30)
            assert outcome.completed
            resumed = [item["runEvents"] for item in outcome.data]
            assert [event["seq"] for event in resumed] == list(range(seq + 1, len(events) + 1))
            assert _resumed(_text(events[:seq]), resumed) == TEXT
    finally:
        await socket.close()


async def test_a_subscriber_that_drops_mid_message_resumes_exactly(live: Live) -> None:
    run_id = await live.create_run(TEXT, await _typist(live))
    first = await _events(live, run_id, until=5)  # three status and message events, two deltas
    assert first[-1]["type"] == "MESSAGE_DELTA"
    rest = await _events(live, run_id, after=first[-1]["seq"])
    assert any(event["type"] == "MESSAGE_DELTA" for event in rest)  # it resumed mid-message
    assert _resumed(_text(first), rest) == TEXT
    assert (await _stored(live, run_id))[3] == TEXT


def _worker(live: Live) -> subprocess.Popen[bytes]:
    url = live.database.engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "RUNQL_DATABASE_URL": url, "RUNQL_POLL_SECONDS": "0.2"}
    return subprocess.Popen(
        [sys.executable, "-m", "runql", "worker", "--concurrency", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
async def worker_process(quiet_live: Live) -> AsyncIterator[Live]:
    """The quiet server, and a `runql worker` process of its own executing its runs."""
    process = _worker(quiet_live)
    try:
        yield quiet_live
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)


async def test_across_processes_a_resumed_subscriber_gets_exactly_the_text(
    worker_process: Live,
) -> None:
    live = worker_process
    run_id = await live.create_run(TEXT, await _typist(live, stream_delay_ms=30))
    first = await _events(live, run_id, until=5)
    whole, rest = await asyncio.gather(
        _events(live, run_id), _events(live, run_id, after=first[-1]["seq"])
    )
    assert any(event["type"] == "MESSAGE_DELTA" for event in rest)
    assert _resumed(_text(first), rest) == _text(whole) == TEXT
    assert await _stored(live, run_id) == (
        "SUCCESS",
        "COMPLETED",
        *(await _stored(live, run_id))[2:3],
        TEXT,
    )


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
async def test_the_npm_graphql_ws_client_follows_a_streamed_run(live: Live) -> None:
    run_id = await live.create_run(TEXT, await _typist(live))
    process = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_CLIENT),
        live.ws_url,
        live.key,
        RUN_EVENTS,
        json.dumps({"id": run_id}),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert lines[-1] == "complete"
    events = [json.loads(line)["data"]["runEvents"] for line in lines[:-1]]
    assert _text(events) == (await _stored(live, run_id))[3] == TEXT
