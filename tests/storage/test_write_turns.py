"""On SQLite, the writers of one process take turns before they reach SQLite's lock
(`Database.write`): none of them waits in SQLite's busy handler for another of its own."""

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, text

from runql.storage.database import Database


def _impatient(url: str) -> Database:
    """The database again, its connections failing at once on a locked file rather than
    waiting in the busy handler: a writer that met another inside SQLite would fail."""
    database = Database.from_url(url)

    @event.listens_for(database.engine.sync_engine, "connect")
    def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    return database


async def test_writers_of_one_process_never_meet_inside_sqlite(database: Database) -> None:
    if not database.is_sqlite:
        pytest.skip("SQLite locks the database file; PostgreSQL locks rows")
    impatient = _impatient(database.engine.url.render_as_string(hide_password=False))
    holding = asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        async with impatient.write() as session:
            await session.execute(text("SELECT 1"))  # BEGIN IMMEDIATE holds the write lock
            holding.set()
            await asyncio.sleep(0.2)
            order.append("first")

    async def second() -> None:
        await holding.wait()
        async with impatient.write() as session:
            await session.execute(text("SELECT 1"))
            order.append("second")

    try:
        await asyncio.gather(first(), second(), *(second() for _ in range(3)))
    finally:
        await impatient.dispose()
    assert order == ["first", "second", "second", "second", "second"]


async def test_a_write_block_inside_another_is_refused_not_left_waiting(
    database: Database,
) -> None:
    """A task that opens a write block inside its own would wait for itself for ever on the
    turn it holds: it fails at once instead, and the outer block still commits."""
    if not database.is_sqlite:
        pytest.skip("the turns are SQLite's")
    async with database.write() as session:
        await session.execute(text("SELECT 1"))
        with pytest.raises(RuntimeError, match="inside another"):
            async with database.write():
                pass  # pragma: no cover
    async with database.write() as session:  # the turn was given back
        await session.execute(text("SELECT 1"))
