"""Fixtures for the run lifecycle: an echo agent on an empty database."""

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from runql.agents import catalog
from runql.agents.registry import default_registry
from runql.lifecycle.runs import RunRequest, create_run
from runql.lifecycle.validation import Content
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID, AgentRow, RunEventRow, RunRow

MAX_BYTES = 1024 * 1024


@pytest.fixture
async def echo(database: Database) -> AgentRow:
    return await catalog.create_agent(
        database,
        default_registry(),
        DEFAULT_ORG_ID,
        name="Echo",
        kind="echo",
        config={"delay_ms": 0},
    )


async def new_run(
    database: Database, agent: AgentRow, text: str = "Hello, world!", **fields: Any
) -> RunRow:
    return await create_run(
        database,
        DEFAULT_ORG_ID,
        RunRequest(agent.id, Content.text(text), **fields),
        max_content_bytes=MAX_BYTES,
    )


async def event_log(database: Database, run_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    async with database.read() as session:
        rows = (
            (
                await session.execute(
                    select(RunEventRow)
                    .where(col(RunEventRow.run_id) == run_id)
                    .order_by(col(RunEventRow.seq))
                )
            )
            .scalars()
            .all()
        )
    return [(row.seq, row.type, row.payload) for row in rows]


async def statuses(database: Database, run_id: str) -> list[str]:
    return [
        payload["status"]
        for _, kind, payload in await event_log(database, run_id)
        if kind == "status_changed"
    ]


async def row_counts(database: Database) -> dict[str, int]:
    from sqlmodel import SQLModel

    counts = {}
    async with database.read() as session:
        for table in SQLModel.metadata.sorted_tables:
            counts[table.name] = (
                await session.execute(select(func.count()).select_from(table))
            ).scalar_one()
    return counts


async def reload(database: Database, run_id: str) -> RunRow:
    async with database.read() as session:
        run = await session.get(RunRow, run_id)
    assert run is not None
    return run
