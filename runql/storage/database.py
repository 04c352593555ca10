"""Engines and sessions.

Reads use short sessions of their own (one per loader batch: an AsyncSession is never shared
between concurrent tasks). Writes go through `Database.write()`, one transaction each, which on
SQLite begins with BEGIN IMMEDIATE so that read-modify-write never loses an update, and takes
its turn behind the process's other writers first (`Database._writing`). A write block must not
open another write block inside it.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from runql.storage import sqlite_driver
from runql.storage.events import CommitListener, take_uncommitted


@dataclass
class StatementCount:
    """SQL statements run on behalf of one unit of work (a GraphQL request)."""

    statements: int = 0
    seconds: float = 0.0


_current_count: ContextVar[StatementCount | None] = ContextVar("runql_sql_count", default=None)
_STARTED = "runql_statement_started"


@asynccontextmanager
async def counting_statements() -> AsyncIterator[StatementCount]:
    count = StatementCount()
    token = _current_count.set(count)
    try:
        yield count
    finally:
        _current_count.reset(token)


def _before_execute(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
    if _current_count.get() is not None and not statement.startswith("BEGIN"):
        conn.info[_STARTED] = time.perf_counter()


def _after_execute(conn: Connection, *_: Any) -> None:
    count = _current_count.get()
    started = conn.info.pop(_STARTED, None)
    if count is not None and started is not None:
        count.statements += 1
        count.seconds += time.perf_counter() - started


# Prepared statements (storage.raw's reads are asyncpg's) are planned for their parameters on
# every execution: after five, PostgreSQL's generic plan for `= ANY($1)` or `LIMIT $n` doubled
# its CPU per feed request (about 12 ms against 5.5 ms at first: 100).
POSTGRES_SESSION = {"plan_cache_mode": "force_custom_plan"}


def _configure_sqlite(sync_engine: Engine) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "busy_timeout=10000",
            "foreign_keys=ON",
            "synchronous=NORMAL",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def sqlite_file(url: str) -> str | None:
    """The file a SQLite URL names; None for PostgreSQL and for an in-memory database."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    path = parsed.database
    return None if not path or path == ":memory:" else path


def in_memory(url: str) -> bool:
    """An in-memory SQLite database: no other process can open it."""
    return make_url(url).drivername.startswith("sqlite") and sqlite_file(url) is None


def create_engine(url: str, *, pool_size: int = 5, max_overflow: int = 5) -> AsyncEngine:
    if url.startswith("sqlite"):
        # Connections of runql's driver: aiosqlite's, a statement in one trip to its thread.
        parsed = make_url(url)
        arguments, options = parsed.get_dialect()().create_connect_args(parsed)
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            async_creator=sqlite_driver.connector(*arguments, **options),
        )
        _configure_sqlite(engine.sync_engine)
    else:
        # No pre-ping: asyncpg's costs three round trips (BEGIN, a ping, ROLLBACK) at every
        # checkout, every write's included. A connection the server has dropped (a restart)
        # fails the one statement that finds it; SQLAlchemy then discards every connection
        # opened before the failure, so the next checkouts connect anew.
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_recycle=1800,
            connect_args={"server_settings": POSTGRES_SESSION},
        )
    event.listen(engine.sync_engine, "before_cursor_execute", _before_execute)
    event.listen(engine.sync_engine, "after_cursor_execute", _after_execute)
    return engine


class Database:
    """One engine and its two session factories: short reads, and serialized writes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._commit_listeners: list[CommitListener] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._writer: asyncio.Task[Any] | None = None  # the task in a write block (SQLite)
        self.read = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        self._write = async_sessionmaker(
            engine.execution_options(sqlite_begin="IMMEDIATE"),
            class_=AsyncSession,
            expire_on_commit=False,
        )

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 5, max_overflow: int = 5) -> "Database":
        return cls(create_engine(url, pool_size=pool_size, max_overflow=max_overflow))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back when it raises.

        The run events it appended are announced to the commit listeners after the commit,
        never after a rollback.
        """
        async with self._writing(), self._write() as session:
            try:
                async with session.begin():
                    yield session
            except BaseException:
                take_uncommitted(session)
                raise
            committed = take_uncommitted(session)
        for run_event in committed:
            for listener in self._commit_listeners:
                listener(run_event)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        """On SQLite, this process's writers take turns here rather than in SQLite's busy
        handler: a writer that finds the file locked sleeps there in steps of up to 100 ms
        and polls again, so one that waited for another writer of its own process lost up to
        that much after the lock came free (the executor's claimer, outcome lane, flush
        batcher and keeper, and the create lane, each wait on the others). Writers of other
        processes still meet in the busy handler. PostgreSQL locks rows, not the database."""
        if self._write_lock is None:
            yield
            return
        task = asyncio.current_task()
        if task is not None and task is self._writer:
            raise RuntimeError("a write block was opened inside another: it would wait for itself")
        async with self._write_lock:
            self._writer = task
            try:
                yield
            finally:
                self._writer = None

    def on_commit(self, listener: CommitListener) -> None:
        self._commit_listeners.append(listener)

    def remove_commit_listener(self, listener: CommitListener) -> None:
        self._commit_listeners.remove(listener)

    def on_dispose(self, closer: Callable[[], Awaitable[None]]) -> None:
        """`closer()` is awaited when the database is disposed (connections of its own that a
        reader keeps beside the engine's pool, such as storage.raw's)."""
        self._closers.append(closer)

    async def dispose(self) -> None:
        closers, self._closers = self._closers, []
        for closer in closers:
            await closer()
        await self.engine.dispose()
