"""Transactional writes: rows inserted a statement per table, and group commit.

Group commit: concurrent writes of one kind (run creation) are taken together into one
transaction, so that many share one commit (one fsync on SQLite, one WAL flush on
PostgreSQL). A caller is answered only after the commit that holds its write. The batch's
writer answers each item on its own: an item it refuses (a missing agent, an idempotency
conflict) writes nothing and does not fail the others. When the transaction itself fails
(a constraint, a deadlock, a lost connection), each item of the batch is tried again alone, in
a transaction of its own, so one bad item fails only its own caller.
"""

import asyncio
import contextlib
import contextvars
import sqlite3
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

from sqlalchemy import JSON, Executable, Table, insert, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from runql.storage.database import Database
from runql.storage.events import NOTIFY_CHANNEL, RunEvent, announce_after_commit
from runql.storage.tables import RunEventRow

Item = TypeVar("Item")
Out = TypeVar("Out")

MAX_BATCH = 64  # items in one transaction at most
BatchWriter = Callable[[AsyncSession, Sequence[Item]], Awaitable[list[Out | Exception]]]
# A batch written in a transaction of the writer's own making, or declined (None)
OwnWriter = Callable[[Sequence[Item]], Awaitable[list[Out | Exception] | None]]


def _columns(row: SQLModel) -> dict[str, Any]:
    mapper = inspect(type(row))
    return {
        attr.columns[0].key: getattr(row, attr.key)
        for attr in mapper.column_attrs
        if not (attr.columns[0].primary_key and getattr(row, attr.key) is None)
    }


async def insert_rows(session: AsyncSession, rows: Iterable[SQLModel]) -> None:
    """Insert new rows, parents before children, one statement per table."""
    by_table: defaultdict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_table[type(row).__table__].append(_columns(row))  # type: ignore[attr-defined]
    for table in SQLModel.metadata.sorted_tables:
        if table in by_table:
            await session.execute(insert(table), by_table[table])


Then = Sequence[tuple[Executable, list[dict[str, Any]]]]  # statements after the inserts, each
# with its parameter sets (one executemany each)


async def insert_values(
    session: AsyncSession,
    values: dict[Table, list[dict[str, Any]]],
    notices: Sequence[str] = (),
    then: Then = (),
) -> None:
    """Insert rows given as column values by table (every row of a table with the same
    columns), in the session's transaction, on the driver's own connection (aiosqlite,
    asyncpg), each statement compiled once a shape and the values bound through the columns'
    types as SQLAlchemy binds them. On PostgreSQL the same statement sends `notices` on
    NOTIFY_CHANNEL (postgres_inserts); SQLite has no NOTIFY (its other processes read the log).

    On SQLite: one executemany a table, parents before children, all in one call on
    aiosqlite's thread (one hop for the batch, not one a statement). On PostgreSQL: one
    statement for every table (each table's rows as arrays, `INSERT ... SELECT FROM
    unnest(...)` in data-modifying WITH clauses; the foreign keys are checked at the
    statement's end), so a batch costs one round trip and one executor run a table rather
    than one a row. Each statement is announced on the engine's cursor events, as
    SQLAlchemy's own are (counts, metrics, tracing). The transaction must have begun: on
    PostgreSQL, a statement of SQLAlchemy's has run in it (asyncpg's adapter begins at the
    first), as on SQLite the BEGIN has.

    `then`: statements run after the inserts, each an executemany of its parameter sets
    (such as the texts a flush appends to): on SQLite in the same trip to the thread, on
    PostgreSQL through the session, one after the other."""
    then = [(statement, params) for statement, params in then if params]
    if not any(values.values()):
        for statement, params in then:
            await session.execute(statement, params)
        return
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    sync = connection.sync_connection
    assert sync is not None
    dialect = connection.dialect
    if dialect.name == "postgresql":
        if not driver.is_in_transaction():
            raise RuntimeError("insert_values runs in a transaction that has begun")
        sql, args = postgres_inserts(values, dialect, notices)
        sync.dispatch.before_cursor_execute(sync, None, sql, args, None, False)
        try:
            await driver.execute(sql, *args)
        finally:
            sync.dispatch.after_cursor_execute(sync, None, sql, args, None, False)
        for statement, params in then:
            await session.execute(statement, params)
        return
    batches = sqlite_inserts(values, dialect)
    for statement, params in then:
        compiled = _driver_statement(statement, dialect)
        batches.append((compiled.sql, [compiled.bound(row) for row in params]))
    for sql, rows in batches:
        sync.dispatch.before_cursor_execute(sync, None, sql, rows, None, True)
    try:  # every table in one trip to aiosqlite's thread, not one a statement
        await driver._execute(_executemany_each, driver._conn, batches)
    finally:
        for sql, rows in batches:
            sync.dispatch.after_cursor_execute(sync, None, sql, rows, None, True)


async def log_events(
    session: AsyncSession,
    events: list[RunEvent],
    values: dict[Table, list[dict[str, Any]]] | None = None,
    then: Then = (),
) -> None:
    """Events numbered by the caller (who bumped their runs' `last_event_seq` in this
    transaction, while holding their rows), their rows inserted with the other rows in
    `values` (insert_values: on PostgreSQL one statement for all that also notifies the
    events, on SQLite one trip to the driver's thread, with the statements of `then`), then
    announced to the commit listeners after the commit."""
    rows = dict(values or {})
    if events:
        rows[_EVENTS] = [*rows.get(_EVENTS, ()), *(event.values() for event in events)]
    await insert_values(session, rows, [event.announcement() for event in events], then)
    announce_after_commit(session, events)


_EVENTS: Table = RunEventRow.__table__  # type: ignore[attr-defined]


def postgres_inserts(
    values: dict[Table, list[dict[str, Any]]], dialect: Dialect, notices: Sequence[str] = ()
) -> tuple[str, list[Any]]:
    """Rows given as insert_values takes them, as one PostgreSQL statement and its arguments
    (every table's inserts in data-modifying WITH clauses). With `notices`, the statement also
    sends each on NOTIFY_CHANNEL (pg_notify: delivered at the commit that holds the rows), so
    that a batch in a transaction of its own (autocommit) is one round trip."""
    shapes = tuple(
        (table, tuple(values[table][0])) for table in _sorted_tables() if values.get(table)
    )
    together = _arrays_insert(shapes, dialect, bool(notices))
    args = together.bound([values[table] for table, _ in shapes])
    if notices:
        args.append(list(notices))
    return together.sql, args


def sqlite_inserts(
    values: dict[Table, list[dict[str, Any]]], dialect: Dialect
) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Rows given as insert_values takes them, as SQLite executemanys (SQL and bound rows), one
    a table, parents before children."""
    batches = []
    for table in _sorted_tables():
        rows = values.get(table)
        if rows:
            statement = _driver_insert(table, dialect, tuple(rows[0]))
            batches.append((statement.sql, [statement.bound(row) for row in rows]))
    return batches


def _executemany_each(
    connection: sqlite3.Connection, batches: list[tuple[str, list[tuple[Any, ...]]]]
) -> None:
    for sql, rows in batches:
        connection.executemany(sql, rows)


@dataclass(frozen=True, slots=True)
class DriverInsert:
    """A statement in the driver's SQL (an INSERT, or an UPDATE of insert_values' `then`), its
    parameters in order with their bind processors."""

    sql: str
    keys: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def compiled(cls, compiled: Any) -> "DriverInsert":
        order = tuple(compiled.positiontup)
        processors = compiled._bind_processors
        return cls(compiled.string, order, tuple(processors.get(key) for key in order))

    def bound(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip([row[key] for key in self.keys], self.processors, strict=True)
        )


_INSERTS: dict[tuple[Table, str, tuple[str, ...]], DriverInsert] = {}


def _driver_insert(table: Table, dialect: Dialect, keys: tuple[str, ...]) -> DriverInsert:
    found = _INSERTS.get((table, dialect.name, keys))
    if found is None:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
        found = _INSERTS[(table, dialect.name, keys)] = DriverInsert.compiled(compiled)
    return found


_STATEMENTS: dict[tuple[Executable, str], DriverInsert] = {}


def _driver_statement(statement: Executable, dialect: Dialect) -> DriverInsert:
    """Any statement with named parameters in the driver's SQL, compiled once a dialect: kept
    by the statement, which is to be built once (a module's constant)."""
    found = _STATEMENTS.get((statement, dialect.name))
    if found is None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        found = _STATEMENTS[(statement, dialect.name)] = DriverInsert.compiled(compiled)
    return found


Shape = tuple[tuple[Table, tuple[str, ...]], ...]  # the tables written and each one's columns


@dataclass(frozen=True, slots=True)
class ArraysInsert:
    """One PostgreSQL statement inserting rows into several tables, a column's values as one
    array parameter; `inserts` are the tables' statements whose keys and processors it uses."""

    sql: str
    inserts: tuple[DriverInsert, ...]

    def bound(self, rows_by_table: list[list[dict[str, Any]]]) -> list[list[Any]]:
        columns: list[list[Any]] = []
        for statement, rows in zip(self.inserts, rows_by_table, strict=True):
            for key, process in zip(statement.keys, statement.processors, strict=True):
                column = [row[key] for row in rows]
                if process is not None:
                    column = [None if value is None else process(value) for value in column]
                columns.append(column)
        return columns


_ARRAY_INSERTS: dict[tuple[Shape, bool], ArraysInsert] = {}


def _arrays_insert(shapes: Shape, dialect: Dialect, notify: bool = False) -> ArraysInsert:
    found = _ARRAY_INSERTS.get((shapes, notify))
    if found is None:
        inserts = tuple(_driver_insert(table, dialect, keys) for table, keys in shapes)
        clauses = []
        number = 0
        for (table, _), statement in zip(shapes, inserts, strict=True):
            arrays, selected = [], []
            for index, key in enumerate(statement.keys):
                number += 1
                column = table.columns[key]
                if isinstance(column.type, JSON):  # sent as text, cast per row
                    arrays.append(f"${number}::text[]")
                    selected.append(f"c{index}::jsonb")
                else:
                    arrays.append(f"${number}::{column.type.compile(dialect=dialect)}[]")
                    selected.append(f"c{index}")
            names = ", ".join(f"c{index}" for index in range(len(statement.keys)))
            clauses.append(
                f"INSERT INTO {table.name} ({', '.join(statement.keys)}) "
                f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) AS v({names})"
            )
        if notify:  # a data-modifying WITH clause runs whether or not anything reads it
            clauses.append(
                f"SELECT pg_notify('{NOTIFY_CHANNEL}', m) FROM unnest(${number + 1}::text[]) AS m"
            )
        *first, last = clauses
        withs = ", ".join(f"w{index} AS ({clause})" for index, clause in enumerate(first))
        sql = f"WITH {withs} {last}" if withs else last
        found = _ARRAY_INSERTS[(shapes, notify)] = ArraysInsert(sql, inserts)
    return found


@cache
def _sorted_tables() -> list[Table]:
    """Parents before children (MetaData sorts them anew at every look)."""
    return list(SQLModel.metadata.sorted_tables)


Entry = tuple[Item, asyncio.Future[Out], contextvars.Context]  # an item, its answer, its caller's


class GroupCommit(Generic[Item, Out]):
    """Writes submitted at once share a transaction of `database.write()`; `write` turns a
    batch into one outcome per item (its result, or the exception its caller gets).

    `own`, if given, is tried first: it writes a batch in a transaction of its own making (such
    as Database.write_on_thread's) or declines it (None), and then `write` writes it.

    `lanes` batches may be in their transactions at once (1 on SQLite, which has one writer).
    A caller that goes away before its batch is taken writes nothing; once taken, its item is
    committed or not with the batch, whether or not anyone is still waiting."""

    def __init__(
        self,
        database: Database,
        write: BatchWriter[Item, Out],
        *,
        lanes: int = 1,
        max_batch: int = MAX_BATCH,
        own: OwnWriter[Item, Out] | None = None,
    ) -> None:
        self._database = database
        self._write = write
        self._own = own
        self._lanes = lanes
        self._max_batch = max_batch
        self._pending: list[Entry[Item, Out]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Out:
        """The item's outcome, once the transaction that holds it has committed."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future, contextvars.copy_context()))
        if self._running < self._lanes:
            self._running += 1
            task = asyncio.create_task(self._drain(), context=contextvars.Context())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._take()
                if batch:  # in its first caller's context: its statements are counted there
                    await asyncio.create_task(self._commit(batch), context=batch[0][2].copy())
        finally:
            self._running -= 1

    def _take(self) -> list[Entry[Item, Out]]:
        taken = [entry for entry in self._pending[: self._max_batch] if not entry[1].done()]
        del self._pending[: self._max_batch]
        return taken

    async def _commit(self, batch: list[Entry[Item, Out]]) -> None:
        try:
            outcomes = await self._written([item for item, _, _ in batch])
        except Exception as error:
            if len(batch) == 1:
                _answer(batch[0][1], error)
                return
            for entry in batch:  # each alone: the fault is its own caller's only
                await self._commit([entry])
            return
        except BaseException as error:  # cancelled (the loop is closing): nobody is left hanging
            for _, future, _ in batch:
                _answer(future, error)
            raise
        for (_, future, _), outcome in zip(batch, outcomes, strict=True):
            _answer(future, outcome)

    async def _written(self, items: list[Item]) -> list[Out | Exception]:
        if self._own is not None:
            found = await self._own(items)
            if found is not None:
                return found
        async with self._database.write() as session:
            return await self._write(session, items)


def _answer(future: asyncio.Future[Out], outcome: "Out | BaseException") -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        future.exception()  # retrieved: an answer nobody waits for any longer logs nothing
