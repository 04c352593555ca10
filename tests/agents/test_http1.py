"""runql.agents.http1's transport on its own, against the loopback chat server: what the
openai agent's tests do not show (they run it through the SDK on asyncio's own loop)."""

import asyncio
import os
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import uvloop

from bench.chat_server import ChatServer, Reply, serving, text_of
from runql.agents.egress import EgressPolicy
from runql.agents.http1 import Http1Transport
from runql.agents.openai import OpenAIKind
from runql.agents.protocol import AgentRequest, Part, TextDelta, Turn
from runql.agents.webhook.client import ssl_context
from runql.enums import ActorType
from runql.settings import LOOPBACK

KEY_ENV = "RUNQL_TEST_HTTP1_KEY"
CHAT = {"model": "loop-1", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def client(limits: httpx.Limits, pool_s: float = 5.0) -> httpx.AsyncClient:
    transport = Http1Transport(EgressPolicy(LOOPBACK), ssl_context(), limits)
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, pool=pool_s))


@pytest.fixture
async def server() -> AsyncIterator[tuple[ChatServer, str]]:
    app = ChatServer()
    async with serving(app) as base_url:
        yield app, base_url


async def test_what_arrived_meanwhile_is_read_at_once(server: tuple[ChatServer, str]) -> None:
    app, base_url = server
    app.default = Reply(tokens=50)  # as fast as the server can
    async with (
        client(httpx.Limits(max_connections=1)) as http,
        http.stream("POST", f"{base_url}/chat/completions", json=CHAT) as response,
    ):
        await asyncio.sleep(0.3)  # the whole answer arrives meanwhile
        pieces = [piece async for piece in response.aiter_raw()]
    assert response.status_code == 200
    body = b"".join(pieces)
    assert body.endswith(b"data: [DONE]\n\n")
    assert len(pieces) == 1, [piece[:40] for piece in pieces]


async def test_connections_are_bounded_and_reused(server: tuple[ChatServer, str]) -> None:
    app, base_url = server
    app.reply(Reply(tokens=3, first_token_after_s=0.5), Reply(tokens=3))
    url = f"{base_url}/chat/completions"
    async with client(httpx.Limits(max_connections=1), pool_s=0.2) as http:
        async with http.stream("POST", url, json=CHAT) as first:
            with pytest.raises(httpx.PoolTimeout):
                await http.post(url, json=CHAT)
            await first.aread()
        second = await http.post(url, json=CHAT)
    assert second.status_code == 200
    assert second.text.endswith("data: [DONE]\n\n")
    assert [seen.client_port for seen in app.seen] == [app.seen[0].client_port] * 2


async def test_an_answer_closed_early_closes_its_connection(
    server: tuple[ChatServer, str],
) -> None:
    app, base_url = server
    app.reply(Reply(tokens=1000, tokens_per_s=100))  # then the default: 5 tokens at once
    url = f"{base_url}/chat/completions"
    async with client(httpx.Limits(max_connections=1)) as http:
        async with http.stream("POST", url, json=CHAT) as response:
            async for _piece in response.aiter_raw():
                break
        closed = time.monotonic()
        await asyncio.wait_for(app.seen[0].gone.wait(), 1.0)
        assert (app.seen[0].disconnected_at or 0) - closed < 1.0
        again = await http.post(url, json=CHAT)  # on a new connection, not the broken one
        assert again.status_code == 200
    assert app.seen[1].client_port != app.seen[0].client_port


def test_the_agent_streams_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """runql serve runs on uvloop, whose transports are not asyncio's classes."""
    monkeypatch.setenv(KEY_ENV, "sk-loopback")

    async def streamed() -> str:
        app = ChatServer(Reply(tokens=20))
        async with serving(app) as base_url:
            config = {"base_url": base_url, "model": "loop-1", "api_key_env": KEY_ENV}
            agent = OpenAIKind(EgressPolicy(LOOPBACK)).create(config)
            message = Turn(ActorType.USER, "Ada", (Part("hi"),))
            request = AgentRequest("run_1", "agent_1", "thread_1", message, ())
            try:
                events = [event async for event in agent.stream(request)]
            finally:
                await agent.aclose()
        return "".join(event.text for event in events if isinstance(event, TextDelta))

    assert os.environ[KEY_ENV]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(streamed()) == text_of(20)
