"""The `openai` agent against an OpenAI-compatible server on loopback (bench/chat_server.py):
real HTTP and the real SDK, through `stream()` and through `run()`."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.chat_server import ChatServer, Reply, serving, text_of
from runql.agents.egress import EgressPolicy
from runql.agents.openai import OpenAIKind
from runql.agents.openai.agent import OpenAIAgent
from runql.agents.protocol import (
    AgentError,
    AgentRequest,
    Cost,
    InvalidConfig,
    MessageStarted,
    Part,
    StreamEvent,
    TextDelta,
    ToolCall,
    Turn,
)
from runql.agents.registry import AgentRegistry
from runql.enums import ActorType, ContentPartType, MessageType
from runql.settings import LOOPBACK

KEY_ENV = "RUNQL_TEST_OPENAI_KEY"
KEY = "sk-test-loopback-0123456789"


@pytest.fixture
async def server() -> AsyncIterator[tuple[ChatServer, str]]:
    app = ChatServer()
    async with serving(app) as base_url:
        yield app, base_url


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
async def made() -> AsyncIterator[list[OpenAIAgent]]:
    agents: list[OpenAIAgent] = []
    yield agents
    for agent in agents:
        await agent.aclose()


def config(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"base_url": base_url, "model": "loop-1", "api_key_env": KEY_ENV, **extra}


def make(made: list[OpenAIAgent], base_url: str, **extra: Any) -> OpenAIAgent:
    agent = OpenAIKind(EgressPolicy(LOOPBACK)).create(config(base_url, **extra))
    made.append(agent)
    return agent


def request(text: str = "What is 2 + 2?") -> AgentRequest:
    history = (
        Turn(ActorType.SYSTEM, "runql", (Part("The thread is about sums."),)),
        Turn(ActorType.USER, "Ada", (Part("Hello"), Part("there"))),
        Turn(ActorType.AGENT, "Calc", (Part("Hi, Ada.", ContentPartType.MARKDOWN),)),
    )
    return AgentRequest(
        run_id="run_1",
        agent_id="agent_1",
        thread_id="thread_1",
        message=Turn(ActorType.USER, "Ada", (Part(text),)),
        history=history,
    )


async def events(agent: OpenAIAgent, req: AgentRequest | None = None) -> list[StreamEvent]:
    return [event async for event in agent.stream(req or request())]


async def failed(agent: OpenAIAgent) -> AgentError:
    with pytest.raises(AgentError) as caught:
        await events(agent)
    return caught.value


def deltas(streamed: list[StreamEvent]) -> str:
    return "".join(event.text for event in streamed if isinstance(event, TextDelta))


async def test_streamed_text_is_the_server_s_tokens(server: tuple[ChatServer, str], made) -> None:
    app, base_url = server
    app.default = Reply(tokens=12)
    streamed = await events(make(made, base_url))
    assert isinstance(streamed[0], MessageStarted)
    # a delta for the chunks each piece of the body completed: one a token at most
    assert 1 <= sum(isinstance(event, TextDelta) for event in streamed) <= 12
    assert deltas(streamed) == text_of(12)


async def test_run_collects_the_stream(server: tuple[ChatServer, str], made) -> None:
    app, base_url = server
    app.default = Reply(tokens=7)
    reply = await make(made, base_url, cost_per_1k_tokens=2.0).run(request())
    assert [message.parts for message in reply.messages] == [(Part(text_of(7)),)]
    total = len(json.dumps(app.seen[0].body["messages"])) // 4 + 7
    assert reply.cost == Cost(total / 1000 * 2.0, "usd")


async def test_usage_is_the_cost(server: tuple[ChatServer, str], made) -> None:
    app, base_url = server
    app.default = Reply(tokens=3)
    priced = await events(make(made, base_url, cost_per_1k_tokens=0.5, cost_unit="eur"))
    unpriced = await events(make(made, base_url))
    total = len(json.dumps(app.seen[0].body["messages"])) // 4 + 3
    assert priced[-1] == Cost(total / 1000 * 0.5, "eur")
    assert unpriced[-1] == Cost(float(total), "tokens")
    assert app.seen[0].body["stream_options"] == {"include_usage": True}
    assert app.seen[0].body["stream"] is True


async def test_history_becomes_the_chat(server: tuple[ChatServer, str], made) -> None:
    app, base_url = server
    agent = make(made, base_url, system_prompt="Be brief.", temperature=0.2, max_tokens=64)
    await events(agent)
    [seen] = app.seen
    assert seen.body["model"] == "loop-1"
    assert seen.body["temperature"] == 0.2
    assert seen.body["max_tokens"] == 64
    assert seen.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "The thread is about sums."},
        {"role": "user", "content": "Hello\nthere"},
        {"role": "assistant", "content": "Hi, Ada."},
        {"role": "user", "content": "What is 2 + 2?"},
    ]


async def test_the_key_is_read_from_the_environment_and_never_kept(
    server: tuple[ChatServer, str], made, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, base_url = server
    kind = OpenAIKind(EgressPolicy(LOOPBACK))
    checked = kind.validate_config(config(base_url))
    agent = make(made, base_url)
    await events(agent)
    assert app.seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in json.dumps(checked)
    assert KEY not in repr(agent)
    monkeypatch.setenv(KEY_ENV, "sk-rotated")
    await events(agent)
    assert app.seen[1].headers["authorization"] == "Bearer sk-rotated"
    monkeypatch.delenv(KEY_ENV)
    error = await failed(agent)
    assert (error.code, error.metadata) == ("missing_api_key", {"api_key_env": KEY_ENV})
    assert len(app.seen) == 2  # nothing was sent without a key


async def test_tool_calls_become_events(server: tuple[ChatServer, str], made) -> None:
    app, base_url = server
    calls = [
        {"id": "call_1", "name": "add", "arguments": '{"a": 2, "b": 2}'},
        {"id": "call_2", "name": "log", "arguments": "not json"},
    ]
    app.default = Reply(tokens=2, tool_calls=calls)
    agent = make(made, base_url)
    streamed = await events(agent)
    assert [event for event in streamed if isinstance(event, ToolCall)] == [
        ToolCall("add", {"a": 2, "b": 2}, "call_1"),
        ToolCall("log", "not json", "call_2"),
    ]
    reply = await agent.run(request())
    assert reply.messages[1].type is MessageType.TOOL_CALL
    stored = json.loads(reply.messages[1].parts[0].text)
    assert stored == {"name": "add", "arguments": {"a": 2, "b": 2}, "call_id": "call_1"}


@pytest.mark.parametrize(
    ("scripted", "code"),
    [
        (Reply(status=429), "rate_limited"),
        (Reply(status=503), "upstream_error"),
        (Reply(status=401), "unauthorized"),
        (Reply(status=400), "request_rejected"),
        (Reply(tokens=5, error_after=3), "stream_error"),
        (Reply(tokens=5, malformed_after=2), "malformed_stream"),
        (Reply(tokens=5, misshapen_after=2), "malformed_stream"),
        (Reply(tokens=5, drop_after=2), "stream_interrupted"),
        (Reply(tokens=5, done=False), "stream_interrupted"),
    ],
)
async def test_each_failure_has_its_code(
    server: tuple[ChatServer, str], made, scripted: Reply, code: str
) -> None:
    app, base_url = server
    app.default = scripted
    error = await failed(make(made, base_url, retries=0))
    assert error.code == code, error.message
    if scripted.status != 200:
        assert error.metadata == {"status": scripted.status}


async def test_a_slow_stream_times_out(server: tuple[ChatServer, str], made) -> None:
    app, base_url = server
    app.default = Reply(tokens=5, tokens_per_s=2)
    error = await failed(make(made, base_url, timeout_s=0.2, retries=0))
    assert error.code == "timeout"
    assert len(app.seen[0].sent) <= 1


async def test_the_timeout_is_each_waits_not_the_streams(
    server: tuple[ChatServer, str], made
) -> None:
    """A stream longer than the timeout, each chunk well within it, is read to its end: the
    deadline moves with every wait (one timer for a connection's waits)."""
    app, base_url = server
    app.default = Reply(tokens=8, tokens_per_s=10)  # 0.8 s, a chunk every 0.1 s
    streamed = await events(make(made, base_url, timeout_s=0.35, retries=0))
    assert deltas(streamed) == text_of(8)


async def test_a_slow_first_token_times_out_after_retries(
    server: tuple[ChatServer, str], made
) -> None:
    app, base_url = server
    app.default = Reply(tokens=2, first_token_after_s=5)
    error = await failed(make(made, base_url, timeout_s=0.2, retries=1))
    assert error.code == "timeout"
    # the headers came at once, so the request had succeeded: no retry once it streams
    assert len(app.seen) == 1


async def test_connection_failure(made) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        error = await failed(make(made, base_url, retries=0))
    assert error.code == "connection_failed"


async def test_retries_happen_before_the_first_token_only(
    server: tuple[ChatServer, str], made
) -> None:
    app, base_url = server
    fast = {"retry-after-ms": "10"}
    app.reply(Reply(status=500, headers=fast), Reply(status=429, headers=fast), Reply(tokens=4))
    streamed = await events(make(made, base_url, retries=2))
    assert deltas(streamed) == text_of(4)
    assert len(app.seen) == 3

    app.reply(Reply(status=500, headers=fast), Reply(status=500, headers=fast))
    error = await failed(make(made, base_url, retries=1))
    assert (error.code, len(app.seen)) == ("upstream_error", 5)

    app.reply(Reply(tokens=5, drop_after=2), Reply(tokens=5))
    error = await failed(make(made, base_url, retries=2))
    assert (error.code, len(app.seen)) == ("stream_interrupted", 6)


async def test_aclose_closes_the_http_stream_within_a_second(
    server: tuple[ChatServer, str], made
) -> None:
    app, base_url = server
    app.default = Reply(tokens=1000, tokens_per_s=50)
    stream = make(made, base_url).stream(request())
    received = 0
    async for event in stream:
        received += isinstance(event, TextDelta)
        if received == 3:
            break
    closed = time.monotonic()
    await stream.aclose()  # type: ignore[attr-defined]
    seen = app.seen[0]
    await asyncio.wait_for(seen.gone.wait(), 1.0)
    assert seen.disconnected_at is not None
    assert seen.disconnected_at - closed < 1.0
    assert not seen.finished
    assert len(seen.sent) < 50


async def test_a_private_base_url_is_refused(server: tuple[ChatServer, str], made) -> None:
    _, base_url = server
    kind = OpenAIKind(EgressPolicy())  # production: no internal addresses
    with pytest.raises(InvalidConfig, match=r"base_url: 10\.1\.2\.3 is a private address"):
        await kind.check_egress(kind.validate_config(config("http://10.1.2.3/v1")))
    registry = AgentRegistry([kind])
    with pytest.raises(InvalidConfig, match="loopback"):
        await registry.check_config("openai", config(base_url))
    # and at connection time, for a config saved before the policy changed
    agent = kind.create(config(base_url))
    made.append(agent)
    error = await failed(agent)
    assert error.code == "egress_refused"
    assert "loopback" in error.message


def test_config_is_checked() -> None:
    kind = OpenAIKind()
    checked = kind.validate_config(config("https://api.openai.com/v1"))
    assert (checked["retries"], checked["cost_unit"]) == (2, "usd")
    bad_configs: list[tuple[dict[str, Any], str]] = [
        ({"api_key_env": "sk-abc def"}, "api_key_env must be the name of an environment variable"),
        ({"base_url": "https://user:pw@api.openai.com/v1"}, "no credentials"),
        ({"temperature": 2.5}, "temperature must be a number from 0 to 2"),
        ({"api_key": "sk-1"}, "openai takes only base_url"),
    ]
    for bad, said in bad_configs:
        with pytest.raises(InvalidConfig, match=said):
            kind.validate_config({**config("https://api.openai.com/v1"), **bad})
    with pytest.raises(InvalidConfig, match="model is required"):
        kind.validate_config({"base_url": "https://api.openai.com/v1", "api_key_env": KEY_ENV})


async def test_runs_share_the_agent_s_connection(server: tuple[ChatServer, str], made) -> None:
    app, base_url = server
    agent = make(made, base_url)
    await events(agent)
    await events(agent)
    assert app.seen[0].client_port == app.seen[1].client_port
    other = make(made, base_url)
    await events(other)
    assert app.seen[2].client_port != app.seen[0].client_port
