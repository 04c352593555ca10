"""The engine's SQLite connections (runql/storage/sqlite_driver.py): a statement in one trip
to aiosqlite's thread, with what SQLAlchemy reads of it (rows, counts, errors) unchanged."""

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from runql.storage.database import Database
from runql.storage.sqlite_driver import OneTripConnection, connector


class _Counted:
    """The calls a connection makes to aiosqlite's thread, counted."""

    def __init__(self, driver: OneTripConnection) -> None:
        self.calls = 0
        self._execute: Any = driver._execute
        driver._execute = self  # type: ignore[method-assign,assignment]

    async def __call__(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return await self._execute(function, *args, **kwargs)


async def _trips(database: Database) -> tuple[_Counted, Any]:
    """A connection of the engine with its calls to the thread counted, and the connection."""
    connection = await database.engine.connect()
    driver = (await connection.get_raw_connection()).driver_connection
    assert isinstance(driver, OneTripConnection)
    return _Counted(driver), connection


async def test_a_statement_is_one_trip_to_the_thread(database: Database) -> None:
    if not database.is_sqlite:
        pytest.skip("aiosqlite is SQLite's driver")
    counted, connection = await _trips(database)
    try:
        await connection.execute(text("SELECT 0"))  # the transaction begins: BEGIN, then this
        before = counted.calls
        rows = (await connection.execute(text("SELECT 1 AS one UNION ALL SELECT 2"))).all()
        assert [tuple(row) for row in rows] == [(1,), (2,)]
        assert counted.calls - before == 1  # aiosqlite's own cursor took four
        before = counted.calls
        await connection.execute(text("CREATE TEMP TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        inserted = await connection.execute(
            text("INSERT INTO t (v) VALUES (:v)"), [{"v": "a"}, {"v": "b"}, {"v": "c"}]
        )
        assert counted.calls - before == 2
        assert inserted.rowcount == 3
    finally:
        await connection.close()


async def test_counts_returning_and_errors_are_sqlalchemys(database: Database) -> None:
    if not database.is_sqlite:
        pytest.skip("aiosqlite is SQLite's driver")
    async with database.engine.begin() as connection:
        await connection.execute(text("CREATE TEMP TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        returned = await connection.execute(
            text("INSERT INTO t (v) VALUES ('a'), ('b') RETURNING id, v")
        )
        assert [tuple(row) for row in returned] == [(1, "a"), (2, "b")]
        single = await connection.execute(text("INSERT INTO t (v) VALUES ('c')"))
        assert single.lastrowid == 3
        updated = await connection.execute(text("UPDATE t SET v = 'z' WHERE id < 3"))
        assert updated.rowcount == 2
        with pytest.raises(IntegrityError):
            await connection.execute(text("INSERT INTO t (id, v) VALUES (1, 'again')"))
        result = await connection.execute(text("SELECT v FROM t ORDER BY id"))
        assert list(result.keys()) == ["v"]
        assert result.scalars().all() == ["z", "z", "c"]


async def test_a_begin_goes_with_the_next_statement_and_a_needless_rollback_stays(
    database: Database,
) -> None:
    if not database.is_sqlite:
        pytest.skip("aiosqlite is SQLite's driver")
    async with database.engine.begin() as connection:
        await connection.execute(text("CREATE TEMP TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    counted, connection = await _trips(database)
    driver = counted._execute.__self__
    try:
        transaction = await connection.begin()  # BEGIN, kept for the next trip
        assert counted.calls == 0
        await connection.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert counted.calls == 1  # the BEGIN and the INSERT
        assert driver.sqlite.in_transaction
        await transaction.rollback()
        assert counted.calls == 2
        assert not driver.sqlite.in_transaction
        rows = (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one()
        assert rows == 0  # the INSERT was in the transaction the BEGIN opened
        await connection.commit()
        before = counted.calls
        await driver.rollback()  # as the pool does when it takes the connection back
        assert counted.calls == before
        empty = await connection.begin()
        await empty.rollback()  # a BEGIN and nothing since: neither goes
        assert counted.calls == before
    finally:
        await connection.close()


async def test_a_rollback_after_a_cancelled_first_call_ends_its_transaction(
    tmp_path: Path,
) -> None:
    """The transaction's first call to the thread is cancelled while it waits its turn there:
    the BEGIN it carries still runs on the thread later, and the ROLLBACK that follows (the
    session's, the pool's) is sent behind it, so the connection is not left in a transaction
    holding the write lock."""
    driver = await connector(str(tmp_path / "t.db"), isolation_level=None)()
    started, release = threading.Event(), threading.Event()

    def hold_the_thread() -> None:
        started.set()
        release.wait(5)

    try:
        blocker = asyncio.ensure_future(driver.on_thread(hold_the_thread))
        assert await asyncio.to_thread(started.wait, 5)
        driver.begin_with_next("BEGIN IMMEDIATE")
        first = asyncio.ensure_future(driver.on_thread(lambda: None))
        await asyncio.sleep(0.05)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        assert not driver.sqlite.in_transaction  # the thread has not run the BEGIN yet
        rolled_back = asyncio.ensure_future(driver.rollback())
        release.set()
        await blocker
        await rolled_back
        assert not await driver.on_thread(lambda: driver.sqlite.in_transaction)
    finally:
        release.set()
        await driver.close()
