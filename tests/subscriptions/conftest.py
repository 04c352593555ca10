"""A real uvicorn server on a loopback port, in the test's event loop, with its executor."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from runql.agents import catalog
from runql.agents.registry import default_registry
from runql.app import create_app
from runql.auth.keys import create_key
from runql.bus.hub import Hub
from runql.fanout.streams import SharedStreams
from runql.settings import Settings
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID, AgentRow

CREATE_RUN = """mutation($agent: ID!, $text: String!) {
  createRun(input: {agentId: $agent, content: {text: $text}}) { run { id status } } }"""


@dataclass
class Live:
    http_url: str
    ws_url: str
    key: str
    database: Database
    hub: Hub
    echo: AgentRow
    streams: SharedStreams

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=20) as client:
            response = await client.post(
                self.http_url,
                json={"query": query, "variables": variables or {}},
                headers={"Authorization": f"Bearer {self.key}"},
            )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    async def create_run(self, text: str = "ping", agent: AgentRow | None = None) -> str:
        data = await self.gql(CREATE_RUN, {"agent": (agent or self.echo).id, "text": text})
        return str(data["createRun"]["run"]["id"])


@asynccontextmanager
async def serve(
    database: Database, settings: Settings
) -> AsyncIterator[tuple[str, Hub, SharedStreams]]:
    """The app over `database` (its settings name that database, so that on PostgreSQL the
    LISTEN connection joins the same one)."""
    url = database.engine.url.render_as_string(hide_password=False)
    app = create_app(settings.replace(database_url=url), database)
    # The socket is bound here and handed to uvicorn: no other test (nor another pytest worker)
    # can take its port between a look-up and the server's bind.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(20):
            while not server.started:  # uvicorn offers no event to wait on
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield f"127.0.0.1:{port}", app.state.hub, app.state.streams
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        sock.close()


LIVE_SETTINGS = {"workers": 2, "poll_seconds": 0.2, "ws_init_timeout_seconds": 1.0}


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return settings.replace(**LIVE_SETTINGS)


@asynccontextmanager
async def live_server(
    database: Database, settings: Settings, key_name: str, echo: dict[str, Any] | None = None
) -> AsyncIterator[Live]:
    """A live server with these settings, an echo agent (`echo`: its config) and a key."""
    agent = await catalog.create_agent(
        database, default_registry(), DEFAULT_ORG_ID, name="Echo", kind="echo", config=echo or {}
    )
    key = (await create_key(database, key_name)).secret
    async with serve(database, settings) as (address, hub, streams):
        yield Live(
            f"http://{address}/graphql",
            f"ws://{address}/graphql",
            key,
            database,
            hub,
            agent,
            streams,
        )


@pytest.fixture
async def live(database: Database, live_settings: Settings) -> AsyncIterator[Live]:
    async with live_server(database, live_settings, "subscriptions", {"delay_ms": 50}) as found:
        yield found


@pytest.fixture
async def quiet_live(database: Database, live_settings: Settings) -> AsyncIterator[Live]:
    """A live server with no workers: the test itself moves runs along."""
    quiet = live_settings.replace(workers=0)
    async with live_server(database, quiet, "subscriptions", {"delay_ms": 0}) as found:
        yield found
