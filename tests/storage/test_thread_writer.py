"""`Database.write_on_thread`: a SQLite file's transaction as one call on the writer thread,
committed whole or not at all, in the process's turn of writers, its events announced after the
commit and its statements on the engine's cursor events."""

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from runql.enums import RunEventType
from runql.storage.database import Database, ThreadStatements, counting_statements
from runql.storage.events import RunEvent
from runql.storage.types import utcnow

INSERT = "INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)"


def _event(run_id: str) -> RunEvent:
    return RunEvent("org", run_id, 1, RunEventType.STATUS_CHANGED, {"status": "pending"}, utcnow())


async def _names(database: Database) -> list[str]:
    async with database.read() as session:
        found = await session.execute(text("SELECT name FROM organizations ORDER BY name"))
    return [row[0] for row in found]


@pytest.fixture
def sqlite(database: Database) -> Database:
    if not database.is_sqlite:
        pytest.skip("the writer thread writes a SQLite file")
    assert database.writes_on_thread
    return database


async def test_a_sqlite_file_has_a_writer_thread_and_postgres_none(database: Database) -> None:
    assert database.writes_on_thread == database.is_sqlite


async def test_a_transaction_commits_announces_and_counts_its_statements(sqlite: Database) -> None:
    heard: list[RunEvent] = []
    sqlite.on_commit(heard.append)
    before = await _names(sqlite)

    def work(statements: ThreadStatements) -> tuple[str, list[RunEvent]]:
        statements.executemany(
            INSERT, [("org_t1", "t1", "2026-01-01"), ("org_t2", "t2", "2026-01-01")]
        )
        return "done", [_event("run_1")]

    async with counting_statements() as count:
        assert await sqlite.write_on_thread(work) == "done"
    assert count.statements == 1
    assert await _names(sqlite) == sorted([*before, "t1", "t2"])
    assert [event.run_id for event in heard] == ["run_1"]


async def test_a_transaction_that_raises_writes_and_announces_nothing(sqlite: Database) -> None:
    heard: list[RunEvent] = []
    sqlite.on_commit(heard.append)
    before = await _names(sqlite)

    def work(statements: ThreadStatements) -> tuple[None, list[RunEvent]]:
        statements.execute(INSERT, ("org_t3", "t3", "2026-01-01"))
        raise ValueError("refused half way")

    with pytest.raises(ValueError, match="half way"):
        await sqlite.write_on_thread(work)
    assert await _names(sqlite) == before
    assert heard == []

    def again(statements: ThreadStatements) -> tuple[None, list[RunEvent]]:
        statements.execute(INSERT, ("org_t4", "t4", "2026-01-01"))
        return None, []

    await sqlite.write_on_thread(again)  # the connection was left clean: no open transaction
    assert await _names(sqlite) == sorted([*before, "t4"])


async def test_it_takes_its_turn_behind_a_session_writer(sqlite: Database) -> None:
    """A session that holds the write turn is not met inside SQLite's lock: the thread's
    transaction waits for the turn, then sees what the session committed."""
    order: list[str] = []
    holding = asyncio.Event()

    async def session_writer() -> None:
        async with sqlite.write() as session:
            await session.execute(text(INSERT.replace("?, ?, ?", "'org_t5', 't5', '2026-01-01'")))
            holding.set()
            await asyncio.sleep(0.2)
            order.append("session")

    def work(statements: ThreadStatements) -> tuple[Any, list[RunEvent]]:
        row = statements.execute("SELECT count(*) FROM organizations WHERE id = 'org_t5'")
        return row.fetchone()[0], []

    async def thread_writer() -> int:
        await holding.wait()
        seen: int = await sqlite.write_on_thread(work)
        order.append("thread")
        return seen

    _, seen = await asyncio.gather(session_writer(), thread_writer())
    assert order == ["session", "thread"]
    assert seen == 1
