"""Transactions that update many running runs lock their rows in id order on PostgreSQL, so
that two of them (a flush and the keeper's lease renewal, say) never deadlock: PostgreSQL
breaks a deadlock only after its deadlock_timeout (a second), every stream waiting meanwhile.

Each test lays two runs' rows out on disk against id order (a sequential scan meets the higher
id first), holds the lower id's row in another transaction, starts the work, and checks that
the higher id's row is still free while the work waits: it asked for the lower one first."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy import text, update
from sqlmodel import col

from runql.lifecycle.runs import DEFAULT_JSON_CAPS
from runql.lifecycle.streaming import FlushBatcher, StreamedRun
from runql.lifecycle.transitions import lock_in_id_order
from runql.storage.database import Database
from runql.storage.tables import RunRow
from tests.lifecycle.test_streaming import _flush_all, _leased

Connect = Callable[[], Awaitable[asyncpg.Connection]]


@pytest.fixture
async def connect(database: Database) -> AsyncIterator[Connect]:
    """New connections to the test's database, closed after the test."""
    if database.is_sqlite:
        pytest.skip("row locks are PostgreSQL's; SQLite serializes every write instead")
    url = database.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    opened: list[asyncpg.Connection] = []

    async def open_one() -> asyncpg.Connection:
        opened.append(await asyncpg.connect(url))
        return opened[-1]

    try:
        yield open_one
    finally:
        await asyncio.gather(*(connection.close() for connection in opened))


async def _lower_id_first(
    database: Database, connect: Connect, runs: list[RunRow], work: Callable[[], Awaitable[object]]
) -> None:
    low, high = sorted(runs, key=lambda run: run.id)
    async with database.write() as session:  # the lower id's live row now after the higher's
        await session.execute(
            update(RunRow).where(col(RunRow.id) == low.id).values(lease_owner="w")
        )
    holder, checker = await connect(), await connect()
    held = holder.transaction()
    await held.start()
    await holder.execute("SELECT id FROM runs WHERE id = $1 FOR UPDATE", low.id)
    started = asyncio.ensure_future(work())
    try:
        async with asyncio.timeout(10):
            while not await checker.fetchval(  # noqa: ASYNC110 (PostgreSQL offers no event)
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            ):
                await asyncio.sleep(0.01)
        # the work waits for the lower id; had it taken the higher one first, this would fail
        free = checker.transaction()
        await free.start()
        await checker.execute("SELECT id FROM runs WHERE id = $1 FOR UPDATE NOWAIT", high.id)
        await free.rollback()
    finally:
        await held.rollback()
        await started


async def test_a_flush_statement_locks_its_runs_in_id_order(
    database: Database, connect: Connect
) -> None:
    batcher = FlushBatcher(database)
    streamed = [
        StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, batcher)
        for row in await _leased(database, 2, "w")
    ]
    assert await _flush_all(streamed, "a ") == [None, None]  # the actor is known: one statement
    await _lower_id_first(
        database, connect, [each.run for each in streamed], lambda: _flush_all(streamed, "b")
    )
    assert await _flush_all(streamed, "c") == [None, None]  # both written, nothing refused


async def test_a_transaction_locks_runs_in_id_order_before_updating_them(
    database: Database, connect: Connect
) -> None:
    """lock_in_id_order: the keeper's lease renewals and the session's flushes call it before
    their UPDATE by `id IN`."""
    runs = await _leased(database, 2, "w")

    async def renew() -> None:
        async with database.write() as session:
            for plan in ("enable_indexscan", "enable_bitmapscan"):  # rows in the order on disk
                await session.execute(text(f"SET LOCAL {plan} = off"))
            await lock_in_id_order(session, [run.id for run in reversed(runs)])
            await session.execute(
                update(RunRow)
                .where(col(RunRow.id).in_([run.id for run in runs]))
                .values(lease_owner="w")
            )

    await _lower_id_first(database, connect, runs, renew)
