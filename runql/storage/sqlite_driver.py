"""The engine's SQLite connections: aiosqlite's, a statement in one trip to its thread.

aiosqlite runs each sqlite3 call on its connection's thread and hands the result back to the
event loop, and SQLAlchemy's adapter makes four such calls a statement (make a cursor,
execute, fetch the rows, close the cursor): four turns of the event loop, each behind
whatever else is ready on it. In a write transaction those turns are time the database file
stays locked, for this process's other writers and for every other process's (a worker with
hundreds of runs in flight held the file 34 ms a claim and 68 ms an outcome batch of a few
statements, while the gateway's creates waited). Here a cursor is made, executed, read to its
end and closed in one call on the thread, and SQLAlchemy then reads the rows, the description
and the counts kept from it without going back: one turn a statement.

Everything else (the thread, the connection, commit, rollback, close, and the driver
connection that storage.writes and storage.raw use) is aiosqlite's own.
"""

import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any

import aiosqlite

ITER_CHUNK_SIZE = 64  # aiosqlite.connect's default

_Executed = tuple[Any, list[Any], int, int | None]  # description, rows, rowcount, lastrowid


def _execute(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Executed:
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor:
    """The cursor SQLAlchemy's aiosqlite adapter is given: `execute` and `executemany` take one
    trip to the connection's thread; the rows, description and counts are read from what that
    trip brought back."""

    arraysize = 1

    def __init__(self, connection: "OneTripConnection") -> None:
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> "OneTripCursor":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = None) -> "OneTripCursor":
        return await self._run(sql, () if parameters is None else parameters, many=False)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> "OneTripCursor":
        return await self._run(sql, parameters, many=True)

    async def _run(self, sql: str, parameters: Any, *, many: bool) -> "OneTripCursor":
        if not many and not parameters and sql.startswith("BEGIN"):
            self._connection.begin_with_next(sql)
            self.description, self.rowcount, self.lastrowid = None, -1, None
            self._rows.clear()
            return self
        raw = self._connection.sqlite
        executed = await self._connection.on_thread(_execute, raw, sql, parameters, many)
        self.description, rows, self.rowcount, self.lastrowid = executed
        self._rows = deque(rows)
        return self

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = min(self.arraysize if size is None else size, len(self._rows))
        return [self._rows.popleft() for _ in range(count)]

    async def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()


def _begun(connection: sqlite3.Connection, begin: str, function: Callable[[], Any]) -> Any:
    connection.execute(begin)
    return function()


class OneTripConnection(aiosqlite.Connection):
    """aiosqlite's connection, its cursors OneTripCursor; a BEGIN goes to the thread with
    whatever follows it (the transaction's first statement, or its COMMIT or ROLLBACK), and a
    ROLLBACK outside a transaction (the pool's, as it takes back a connection whose
    transaction has ended) does not go at all: a write transaction of three statements takes
    four trips, not six, and a read session two, not four."""

    _begin: str | None = None  # a BEGIN that goes with the next call to the thread
    _handed = False  # a BEGIN went to the thread and no COMMIT or ROLLBACK has ended it since

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    def begin_with_next(self, sql: str) -> None:
        """`sql` (a BEGIN) run on the thread just before the next call there: an error it
        raises (the database busy beyond busy_timeout) is that call's."""
        assert self._begin is None, "a BEGIN inside a transaction"
        self._begin = sql

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        begin, self._begin = self._begin, None
        call: Callable[..., Awaitable[Any]] = aiosqlite.Connection._execute
        if begin is not None:
            self._handed = True
            return await call(self, _begun, self.sqlite, begin, partial(fn, *args, **kwargs))
        return await call(self, fn, *args, **kwargs)

    async def commit(self) -> None:
        await super().commit()
        self._handed = False

    async def rollback(self) -> None:
        """Sent unless nothing can be open: a BEGIN handed to the thread goes on there even
        when its caller was cancelled, so `in_transaction`, read here before the thread has
        run it, may not show it yet; the ROLLBACK queues behind it."""
        if self._begin is not None:  # nothing ran since the BEGIN: nothing to roll back
            self._begin = None
        elif self._handed or self._connection is None or self._connection.in_transaction:
            self._handed = False
            await super().rollback()

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection, to be used on the connection's thread only."""
        assert self._conn is not None
        return self._conn

    async def on_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` called on the connection's thread: its result, or what it raised."""
        return await self._execute(function, *args)


def connector(database: str, **options: Any) -> Callable[[], Any]:
    """The `async_creator` of an engine on `database` (sqlite3.connect's arguments, as the
    dialect makes them from the URL)."""

    async def connect() -> OneTripConnection:
        made = OneTripConnection(lambda: sqlite3.connect(database, **options), ITER_CHUNK_SIZE)
        made._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own
        await made  # its thread started and connected
        return made

    return connect
