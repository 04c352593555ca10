"""Fixtures for the REST API: the demo data, a second organization, and the demo's runs."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import SQLModel, col

from runql.app import create_app
from runql.auth.keys import create_key
from runql.settings import Settings
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID, AgentRow, RunRow
from tests.backends import PostgresBackend, SQLiteBackend


async def row_counts(database: Database) -> dict[str, int]:
    counts = {}
    async with database.read() as session:
        for table in SQLModel.metadata.sorted_tables:
            statement = select(func.count()).select_from(table)
            counts[table.name] = (await session.execute(statement)).scalar_one()
    return counts


async def all_runs(database: Database, org_id: str = DEFAULT_ORG_ID) -> list[RunRow]:
    """Every run of the organization, newest first, read straight from the table."""
    statement = (
        select(RunRow)
        .where(col(RunRow.org_id) == org_id)
        .order_by(col(RunRow.created_at).desc(), col(RunRow.id).desc())
    )
    async with database.read() as session:
        return list((await session.execute(statement)).scalars().all())


async def demo_agent(database: Database, kind: str) -> AgentRow:
    statement = select(AgentRow).where(
        col(AgentRow.kind) == kind, col(AgentRow.org_id) == DEFAULT_ORG_ID
    )
    async with database.read() as session:
        return (await session.execute(statement)).scalars().first()  # type: ignore[return-value]


@pytest.fixture
async def runs(demo_database: Database) -> list[RunRow]:
    return await all_runs(demo_database)


@pytest.fixture
async def echo(demo_database: Database) -> AgentRow:
    return await demo_agent(demo_database, "echo")


@pytest.fixture
async def other_http(
    demo_database: Database, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client with a key of another organization, over the demo data."""
    secret = (await create_key(demo_database, "other", "acme")).secret
    app = create_app(settings, demo_database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://runql.test",
        headers={"Authorization": f"Bearer {secret}"},
    ) as client:
        yield client


@pytest.fixture
async def empty_database(
    backend: SQLiteBackend | PostgresBackend, migrated_template: str, tmp_path: Path
) -> AsyncIterator[Database]:
    """An empty database beside the demo one (`database` would take the same file)."""
    folder = tmp_path / "empty"
    folder.mkdir()
    database = Database.from_url(await backend.copy(migrated_template, folder))
    yield database
    await database.dispose()


@pytest.fixture
async def empty_http(
    empty_database: Database, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    secret = (await create_key(empty_database, "tests")).secret
    app = create_app(settings, empty_database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://runql.test",
        headers={"Authorization": f"Bearer {secret}"},
    ) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The error body, checked to be the REST error shape and nothing else."""
    body: dict[str, Any] = response.json()
    assert response.headers["content-type"] == "application/json"
    assert set(body) <= {"status", "code", "message", "field", "error_id"}, body
    assert body["status"] == response.status_code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert "Traceback" not in response.text
    assert "/runql/" not in response.text
    return body
