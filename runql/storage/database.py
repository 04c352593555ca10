"""Engines and sessions.

Reads use short sessions of their own (one per loader batch: an AsyncSession is never shared
between concurrent tasks). Writes go through `Database.write()`, one transaction each, which on
SQLite begins with BEGIN IMMEDIATE so that read-modify-write never loses an update, and takes
its turn behind the process's other writers first (`Database._writing`). A write block must not
open another write block inside it.

On a SQLite file, `Database.write_on_thread` runs a whole transaction as one call on a writer
thread of the process's own (its own connection): one hand-off for BEGIN, the statements and
COMMIT, where a session's transaction costs three or four hand-offs to aiosqlite's thread a
statement (cursor, execute, fetch, close), and each resumes behind whatever the loop serves.
"""

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from runql.storage import sqlite_driver
from runql.storage.events import CommitListener, RunEvent, take_uncommitted

T = TypeVar("T")


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
# every execution. A generic plan cannot see its parameters: for a filtered page of a large
# organization (`org_id = $1 AND completed_at >= $2 ORDER BY created_at DESC LIMIT $3`, or a
# rare agent's runs) it walks every run of the organization (59-80 ms against 0.04-0.2 ms at
# 300,000 runs), though at 5,000 demo runs it can save about half of a feed's planning.
# A plan made for a batch's keys (`id = ANY($1)` with 150 ids) weighs index reads at the
# default random_page_cost (4, a disk's seek): it scanned every message group, content and
# part of the organization instead (at 5,000 demo runs a feed of 100 cost 15.7 ms of backend
# CPU in its statements against 8.0 ms at 1.1, the rows it reads being in memory).
POSTGRES_SESSION = {"plan_cache_mode": "force_custom_plan", "random_page_cost": "1.1"}


SQLITE_PRAGMAS = ("journal_mode=WAL", "busy_timeout=10000", "foreign_keys=ON", "synchronous=NORMAL")


def _configure_sqlite(sync_engine: Engine) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
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


class Announced:
    """What the engine's statement hooks read of a connection, its `info`: statements run on a
    driver connection of runql's own are announced on the engine's cursor events with this in
    place of a SQLAlchemy Connection, so that whatever observes statements (counts, metrics,
    tracing) sees them too."""

    __slots__ = ("info",)

    def __init__(self) -> None:
        self.info: dict[Any, Any] = {}


Executed = tuple[str, Any, bool]  # SQL, its parameters, whether an executemany


@dataclass
class ThreadStatements:
    """The statements of a transaction on the writer thread, kept to be announced after it."""

    connection: sqlite3.Connection
    executed: list[Executed] = field(default_factory=list)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        self.executed.append((sql, args, False))
        return self.connection.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.executed.append((sql, rows, True))
        self.connection.executemany(sql, rows)


ThreadWork = Callable[[ThreadStatements], tuple[T, list[RunEvent]]]


class _ThreadWriter:
    """A SQLite file's writer thread and its connection (configured as the engine's are)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="runql-sqlite-writer")

    def _connected(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            for pragma in SQLITE_PRAGMAS:
                connection.execute(f"PRAGMA {pragma}")
            self._connection = connection
        return self._connection

    def _transaction(self, work: ThreadWork[T]) -> tuple[list[Executed], T, list[RunEvent]]:
        connection = self._connected()
        statements = ThreadStatements(connection)
        connection.execute("BEGIN IMMEDIATE")
        try:
            value, events = work(statements)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return statements.executed, value, events

    async def run(self, work: ThreadWork[T]) -> tuple[list[Executed], T, list[RunEvent]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._transaction, work)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, connection.close)
        self._thread.shutdown(wait=False)


class Database:
    """One engine and its two session factories: short reads, and serialized writes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._commit_listeners: list[CommitListener] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._writer: asyncio.Task[Any] | None = None  # the task in a write block (SQLite)
        self._sqlite_path = sqlite_file(engine.url.render_as_string(hide_password=False))
        self._thread_writer: _ThreadWriter | None = None
        self._committing = 0  # commits under way that have not announced their events yet
        self._announced: list[Callable[[], None]] = []  # when_announced's callbacks
        self.write_commits = 0  # write transactions committed (`committed`'s calls), for /metrics
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
            committing = False
            try:
                async with session.begin():
                    yield session
                    self._committing += 1  # when_announced's window: the COMMIT follows
                    committing = True
            except BaseException:
                take_uncommitted(session)
                if committing:
                    self._commit_ends()
                raise
            try:  # at once, not after the session's connection is given back (one more trip)
                self.committed(take_uncommitted(session))
            finally:
                self._commit_ends()

    @property
    def writes_on_thread(self) -> bool:
        """Whether `write_on_thread` serves this database (a SQLite file)."""
        return self._sqlite_path is not None

    async def write_on_thread(self, work: ThreadWork[T]) -> T:
        """A SQLite file only: `work(statements)` in one transaction (BEGIN IMMEDIATE, its
        statements, COMMIT; ROLLBACK when it raises) on the writer thread, in this process's
        turn of writers as `write` takes it. It returns its value and the run events whose rows
        it inserted: they are announced to the commit listeners after the commit, and its
        statements on the engine's cursor events."""
        assert self._sqlite_path is not None, "write_on_thread writes a SQLite file"
        async with self._writing():
            if self._thread_writer is None:
                self._thread_writer = _ThreadWriter(self._sqlite_path)
            self._committing += 1  # when_announced's window: the COMMIT is in `run`
            try:
                executed, value, events = await self._thread_writer.run(work)
                self.committed(events)
            finally:
                self._commit_ends()
        dispatch, announced = self.engine.sync_engine.dispatch, Announced()
        for sql, args, many in executed:
            dispatch.before_cursor_execute(announced, None, sql, args, None, many)
            dispatch.after_cursor_execute(announced, None, sql, args, None, many)
        return value

    def _commit_ends(self) -> None:
        """The callbacks that waited are called soon after, on the event loop: what they raise
        is the loop's to report, never the writer's, whose transaction has committed."""
        self._committing -= 1
        if not self._committing and self._announced:
            waiting, self._announced = self._announced, []
            loop = asyncio.get_running_loop()
            for callback in waiting:
                loop.call_soon(callback)

    def when_announced(self, callback: Callable[[], None]) -> None:
        """`callback()` once every commit of `write` and `write_on_thread` under way now has
        announced its run events (at once when none is). A reader of the log from outside the
        engine (runql.bus.feeders.SQLiteTail) that would announce what it read waits here: a
        row this process committed is then announced first with its event, and the reader's
        notice of it is a duplicate the hub drops, rather than a notice without the event that
        sends each of the run's subscribers to read the log. The window opens before the
        COMMIT is sent (the rows are visible to others from the COMMIT on) and closes once
        the commit listeners have been called, or the transaction has failed."""
        if self._committing:
            self._announced.append(callback)
        else:
            callback()

    def committed(self, committed: list[RunEvent]) -> None:
        """A write transaction has committed, with these run events: announced to the commit
        listeners. `write` and `write_on_thread` call it; so does a writer whose statement
        commits in a transaction of its own (autocommit), once a statement."""
        self.write_commits += 1
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
        writer, self._thread_writer = self._thread_writer, None
        if writer is not None:
            await writer.close()
        await self.engine.dispose()
