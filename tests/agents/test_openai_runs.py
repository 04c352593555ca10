"""End to end: an `openai` agent created over GraphQL, its runs executed by a worker against the
loopback OpenAI-compatible server, read back over GraphQL: the streamed text stored, the
usage as the cost, the thread as the chat, a failure as the run's error. Both databases."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.chat_server import ChatServer, Reply, serving, text_of
from runql.agents.egress import EgressPolicy
from runql.agents.registry import AgentRegistry
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.settings import LOOPBACK, Environment, Settings
from runql.storage.database import Database
from tests.conftest import GraphQLClient

KEY_ENV = "RUNQL_TEST_OPENAI_RUNS_KEY"
DEVELOPMENT = Settings(env=Environment.DEVELOPMENT, workers=0)  # loopback allowed

CREATE_AGENT = """mutation($config: JSON) { createAgent(input: {name: "Loop", kind: "openai",
  config: $config}) { agent { id kind config } } }"""
CREATE_RUN = """mutation($agent: ID!, $text: String!, $thread: ID) {
  createRun(input: {agentId: $agent, content: {text: $text}, threadId: $thread}) {
    run { id threadId } } }"""
READ_RUN = """query($id: ID!) { run(id: $id) { status cost { amount unit } errors { code message }
  messageGroup { messages { actor { type } content { parts { type text } } } } } }"""


@pytest.fixture
async def server() -> AsyncIterator[tuple[ChatServer, str]]:
    app = ChatServer(Reply(tokens=8))
    async with serving(app) as base_url:
        yield app, base_url


async def _agent(gql: GraphQLClient, base_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, "sk-e2e")
    config = {"base_url": base_url, "model": "loop-1", "api_key_env": KEY_ENV}
    body = await gql(CREATE_AGENT, {"config": {**config, "cost_per_1k_tokens": 1.5}})
    assert "errors" not in body, body
    agent = body["data"]["createAgent"]["agent"]
    assert agent["config"]["api_key_env"] == KEY_ENV
    assert "sk-e2e" not in str(agent)
    return str(agent["id"])


async def _run(
    gql: GraphQLClient, database: Database, agent: str, text: str, thread: str | None = None
) -> tuple[dict[str, Any], str]:
    created = await gql(CREATE_RUN, {"agent": agent, "text": text, "thread": thread})
    assert "errors" not in created, created
    run = created["data"]["createRun"]["run"]
    registry = AgentRegistry.default(EgressPolicy(LOOPBACK))
    executor = Executor(database, registry, ExecutorConfig(concurrency=1))
    try:
        assert await executor.run_once()
    finally:
        await executor.agents.close()
    read = await gql(READ_RUN, {"id": run["id"]})
    return read["data"]["run"], str(run["threadId"])


async def test_a_run_stores_the_streamed_text_and_the_thread_is_the_chat(
    database: Database, server: tuple[ChatServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, base_url = server
    gql = GraphQLClient(database, DEVELOPMENT)
    agent = await _agent(gql, base_url, monkeypatch)

    run, thread = await _run(gql, database, agent, "What is 2 + 2?")
    assert run["status"] == "SUCCESS", run
    [message] = run["messageGroup"]["messages"]
    assert message["actor"]["type"] == "AGENT"
    assert message["content"]["parts"] == [{"type": "TEXT", "text": text_of(8)}]
    total = len(json.dumps(app.seen[0].body["messages"])) // 4 + 8  # the server's usage
    assert run["cost"]["unit"] == "usd"
    assert run["cost"]["amount"] == pytest.approx(total / 1000 * 1.5)

    run, _ = await _run(gql, database, agent, "And 3 + 3?", thread)
    assert run["status"] == "SUCCESS", run
    assert app.seen[1].body["messages"] == [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": text_of(8)},
        {"role": "user", "content": "And 3 + 3?"},
    ]
    assert app.seen[1].headers["authorization"] == "Bearer sk-e2e"


async def test_a_failed_stream_ends_the_run_in_error_with_its_code(
    database: Database, server: tuple[ChatServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, base_url = server
    gql = GraphQLClient(database, DEVELOPMENT)
    agent = await _agent(gql, base_url, monkeypatch)
    app.default = Reply(status=429, headers={"retry-after-ms": "1"})
    run, _ = await _run(gql, database, agent, "Hello?")
    assert run["status"] == "ERROR"
    assert [error["code"] for error in run["errors"]] == ["rate_limited"]
    assert len(app.seen) == 3  # the first request and its 2 retries


CANCEL_RUN = "mutation($id: ID!) { cancelRun(id: $id) { run { id status } } }"
READ_TEXT = """query($id: ID!) { run(id: $id) { status messageGroup { status messages {
  status content { parts { text } } } } } }"""


async def test_cancelling_a_streaming_run_closes_its_stream_and_keeps_its_text(
    database: Database, server: tuple[ChatServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """cancelRun while the model streams: the HTTP stream to the model is closed within a
    second, and the text streamed so far stays, its group CANCELLED with the run."""
    app, base_url = server
    app.default = Reply(tokens=400, tokens_per_s=50)  # 8 s if nobody stops it
    gql = GraphQLClient(database, DEVELOPMENT)
    agent = await _agent(gql, base_url, monkeypatch)
    created = await gql(CREATE_RUN, {"agent": agent, "text": "Tell me a long story."})
    run_id = created["data"]["createRun"]["run"]["id"]
    registry = AgentRegistry.default(EgressPolicy(LOOPBACK))
    executor = Executor(database, registry, ExecutorConfig(concurrency=1))
    running = asyncio.create_task(executor.run_once())
    try:
        async with asyncio.timeout(10):
            while True:  # until some text is stored and readable
                read = (await gql(READ_TEXT, {"id": run_id}))["data"]["run"]
                group = read["messageGroup"]
                if (
                    group
                    and group["messages"]
                    and group["messages"][0]["content"]["parts"][0]["text"]
                ):
                    break
                await asyncio.sleep(0.05)
        asked = time.monotonic()
        cancelled = await gql(CANCEL_RUN, {"id": run_id})
        assert "errors" not in cancelled, cancelled
        async with asyncio.timeout(5):
            await app.seen[0].gone.wait()
        assert app.seen[0].disconnected_at is not None
        assert app.seen[0].disconnected_at - asked < 1.0
        assert await running
    finally:
        running.cancel()
        await executor.agents.close()
    read = (await gql(READ_TEXT, {"id": run_id}))["data"]["run"]
    assert read["status"] == "CANCELLED"
    assert read["messageGroup"]["status"] == "CANCELLED"
    [message] = read["messageGroup"]["messages"]
    kept = message["content"]["parts"][0]["text"]
    assert kept
    assert text_of(400).startswith(kept)
    assert kept != text_of(400)
