"""The migrations build the schema runql/storage/tables.py declares, on each backend: no table,
column, type or index of the one is missing from the other (Alembic's comparison of a migrated
database with the metadata, as `revision --autogenerate` makes it)."""

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import runql.storage.tables  # noqa: F401  (registers the tables on the metadata)
from runql.storage.database import Database
from runql.storage.graph import OBJECTS, ToMany


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def test_the_migrated_schema_is_the_declared_one(database: Database) -> None:
    async with database.engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert differences == []


async def test_several_groups_messages_are_read_in_order_without_a_sort(
    database: Database,
) -> None:
    """The order every read of a group's messages follows (storage/graph.py: message_group_id,
    position, id) is the index's: SQLite reads several groups' messages in it, sorting nothing."""
    if not database.is_sqlite:
        pytest.skip("the plan asked for is SQLite's")
    messages = OBJECTS["MessageGroup"].relations["messages"]
    assert isinstance(messages, ToMany)
    statement = text(
        "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE message_group_id IN (:a, :b)"
        f" AND org_id = :org ORDER BY {', '.join(messages.order)}"
    )
    async with database.engine.connect() as connection:
        plan = (await connection.execute(statement, {"a": "g1", "b": "g2", "org": "o"})).all()
    steps = [str(row[-1]) for row in plan]
    assert any("ix_messages_group_position_id" in step for step in steps), steps
    assert not any("TEMP B-TREE" in step for step in steps), steps
