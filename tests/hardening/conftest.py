"""Apps and clients with settings of the test's choosing, over the demo data."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col

from runql.app import create_app
from runql.enums import RunStatus
from runql.lifecycle.transitions import transition
from runql.settings import Environment, Settings
from runql.storage.database import Database
from runql.storage.tables import RunRow
from tests.conftest import GraphQLClient

MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]
MakeGql = Callable[..., GraphQLClient]


def settings_with(**overrides: Any) -> Settings:
    """Development settings without workers, as in tests/conftest.py, changed as given."""
    return Settings(env=Environment.DEVELOPMENT, workers=0).replace(**overrides)


@pytest.fixture
async def client_with(demo_database: Database, api_key: str) -> AsyncIterator[MakeClient]:
    """`await client_with(max_depth=3)`: an HTTP client (over ASGI) of an app with those
    settings, authenticated with `api_key`."""
    async with AsyncExitStack() as stack:

        async def make(**overrides: Any) -> httpx.AsyncClient:
            app = create_app(settings_with(**overrides), demo_database)
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://runql.test",
                headers={"Authorization": f"Bearer {api_key}"},
            )
            return await stack.enter_async_context(client)

        yield make


@pytest.fixture
def gql_with(demo_database: Database) -> MakeGql:
    """`gql_with(max_cost=10)`: the in-process GraphQL client with those settings."""
    return lambda **overrides: GraphQLClient(demo_database, settings_with(**overrides))


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def limit_error(body: dict[str, Any]) -> dict[str, Any]:
    """The one error of a body refused by a query limit: its extensions."""
    assert codes(body) == ["QUERY_TOO_COMPLEX"], body
    extensions: dict[str, Any] = body["errors"][0]["extensions"]
    return extensions


async def running_run(database: Database) -> str:
    """A demo run moved to RUNNING, as a worker would: cancelRun then waits for a worker."""
    async with database.write() as session:
        pending = select(col(RunRow.id)).where(col(RunRow.status) == RunStatus.PENDING).limit(1)
        run_id = (await session.execute(pending)).scalar_one()
        await transition(session, run_id, RunStatus.RUNNING)
    return str(run_id)
