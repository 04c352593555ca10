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
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

import asyncpg
from sqlalchemy import JSON, Executable, Table, insert, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from runql.errors import Conflict
from runql.storage.database import Database
from runql.storage.events import (
    NOTIFY_CHANNEL,
    RunEvent,
    announce_after_commit,
    announcement_sql,
)
from runql.storage.raw import raw_reads
from runql.storage.tables import ContentPartRow, RunEventRow, RunRow

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
        clauses, inserts, number = _insert_clauses(shapes, dialect)
        if notify:  # a data-modifying WITH clause runs whether or not anything reads it
            clauses.append(
                f"SELECT pg_notify('{NOTIFY_CHANNEL}', m) FROM unnest(${number + 1}::text[]) AS m"
            )
        *first, last = clauses
        withs = ", ".join(f"w{index} AS ({clause})" for index, clause in enumerate(first))
        sql = f"WITH {withs} {last}" if withs else last
        found = _ARRAY_INSERTS[(shapes, notify)] = ArraysInsert(sql, inserts)
    return found


def _insert_clauses(
    shapes: Shape, dialect: Dialect, number: int = 0
) -> tuple[list[str], tuple[DriverInsert, ...], int]:
    """Each table's `INSERT ... SELECT FROM unnest(...)`, its arrays the parameters after
    $`number`; their statements (ArraysInsert's), and the last parameter's number."""
    inserts = tuple(_driver_insert(table, dialect, keys) for table, keys in shapes)
    clauses = []
    for (table, _), statement in zip(shapes, inserts, strict=True):
        arrays, selected = _unnested(table, statement, dialect, number)
        number += len(arrays)
        clauses.append(
            f"INSERT INTO {table.name} ({', '.join(statement.keys)}) "
            f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) AS v({_names(arrays)})"
        )
    return clauses, inserts, number


def _unnested(
    table: Table, statement: DriverInsert, dialect: Dialect, number: int
) -> tuple[list[str], list[str]]:
    """The statement's columns as array parameters, numbered after $`number`, and each one's
    value in unnest's row (c0, c1, ...): JSON is sent as text and cast per row."""
    arrays, selected = [], []
    for index, key in enumerate(statement.keys):
        column = table.columns[key]
        if isinstance(column.type, JSON):
            arrays.append(f"${number + index + 1}::text[]")
            selected.append(f"c{index}::jsonb")
        else:
            arrays.append(f"${number + index + 1}::{column.type.compile(dialect=dialect)}[]")
            selected.append(f"c{index}")
    return arrays, selected


def _names(arrays: Sequence[str]) -> str:
    return ", ".join(f"c{index}" for index in range(len(arrays)))


# -- events of held runs, with their rows, in one PostgreSQL statement -------------------------


@dataclass(frozen=True, slots=True)
class HeldBatch:
    """What write_held writes: runs' events (`relative`: each event's seq counted from its
    run's last, 0 the last, -1 the one before...) while `held_by` holds the runs' leases, each
    run's event count (`counts`) and new message group (`groups`, where it has one), the rows
    of `values`, and `texts` (part id, more) to append to stored parts' text."""

    relative: Sequence[RunEvent]
    held_by: str
    counts: Mapping[str, int]
    groups: Mapping[str, str]
    values: dict[Table, list[dict[str, Any]]]
    texts: Sequence[tuple[str, str]]


async def write_held(database: Database, batch: HeldBatch) -> list[tuple[str, str, int]]:
    """PostgreSQL: runs' events with rows, in ONE statement in autocommit on the raw pool (its
    own transaction, committed when this returns; so one round trip, where a session's
    transaction costs BEGIN, the bump, the inserts, the appends and COMMIT). The statement
    (postgres_held) bumps each run's `last_event_seq` by its count while the batch's worker
    holds its lease (the row locked to the commit: numbers without gaps or duplicates) and sets
    its message group; inserts the rows and the events, numbered from the bumped values, with
    their NOTIFYs; and appends the texts. Raises Conflict, having written nothing, when a run
    is no longer the worker's. Returns each run's id, organization and bumped
    `last_event_seq`; the caller announces the events to the commit listeners."""
    sql, args = postgres_held(database.engine.dialect, batch)
    async with raw_reads(database) as raw:
        try:
            bumped = await raw.run(sql, args)
        except asyncpg.DivisionByZeroError:  # the statement's check: a run was not bumped
            raise Conflict(
                f"a run of the batch is no longer {batch.held_by}'s", field="id"
            ) from None
    return [(row[0], row[1], row[2]) for row in bumped]


def postgres_held(dialect: Dialect, batch: HeldBatch) -> tuple[str, list[Any]]:
    """write_held's statement (built once a shape) and its arguments."""
    values, groups, texts = batch.values, batch.groups, batch.texts
    shapes = tuple(
        (table, tuple(values[table][0])) for table in _sorted_tables() if values.get(table)
    )
    keys = tuple(batch.relative[0].values())
    statement = _held(shapes, keys, dialect, bool(groups), bool(texts))
    run_ids = sorted(batch.counts)
    args: list[Any] = [run_ids, [batch.counts[run_id] for run_id in run_ids], batch.held_by]
    if groups:
        args.append([groups.get(run_id) for run_id in run_ids])
    rows = [values[table] for table, _ in shapes]
    args += statement.bound([*rows, [event.values() for event in batch.relative]])
    parts = [event.around_seq() for event in batch.relative]
    args += [[part[index] for part in parts] for index in range(3)]
    if texts:
        args += [[part for part, _ in texts], [more for _, more in texts]]
    return statement.sql, args


_HELD: dict[tuple[Shape, tuple[str, ...], bool, bool], ArraysInsert] = {}


def _held(
    shapes: Shape, keys: tuple[str, ...], dialect: Dialect, groups: bool, texts: bool
) -> ArraysInsert:
    """postgres_held's statement: its parameters are the runs' ids, their counts, the worker
    (and the runs' groups), then `shapes`' columns, the events' columns, their announcements'
    parts (RunEvent.around_seq) and the texts' part ids and more."""
    found = _HELD.get((shapes, keys, groups, texts))
    if found is None:
        number = 4 if groups else 3
        clauses, inserts, number = _insert_clauses(shapes, dialect, number)
        events = _driver_insert(_EVENTS, dialect, keys)
        numbered, number = _numbered_clause(events, dialect, number)
        withs = [
            ("locked", _LOCKED),
            ("bumped", _bump_clause(groups)),
            *((f"w{index}", clause) for index, clause in enumerate(clauses)),
            ("numbered", numbered),
            (
                "logged",
                f"INSERT INTO {_EVENTS.name} ({', '.join(events.keys)}) "
                f"SELECT {', '.join(events.keys)} FROM numbered ORDER BY run_id, seq",
            ),
            (
                "notified",
                f"SELECT pg_notify('{NOTIFY_CHANNEL}', "
                f"{announcement_sql('head', 'seq', 'tail', 'rest')}) FROM numbered",
            ),
        ]
        if texts:
            withs.append(("appended", _append_clause(number)))
        sql = (
            f"WITH {', '.join(_with(name, clause) for name, clause in withs)} "
            # One row at least, so that the check is made when no run was bumped: a division
            # by zero unless every run was (write_held's Conflict). `notified` is read here
            # since a WITH clause that does not modify data runs only when read.
            "SELECT b.id, b.org_id, b.last_event_seq, c.held, c.sent FROM (SELECT "
            "1 / ((SELECT count(*) FROM bumped) = cardinality($1::text[]))::int AS held, "
            "(SELECT count(*) FROM notified) AS sent) AS c LEFT JOIN bumped AS b ON true"
        )
        found = _HELD[(shapes, keys, groups, texts)] = ArraysInsert(sql, (*inserts, events))
    return found


_RUNS: Table = RunRow.__table__  # type: ignore[attr-defined]
_PARTS: Table = ContentPartRow.__table__  # type: ignore[attr-defined]


# The runs ($1), locked in id order before `bumped` updates them (the keeper's lease renewals
# and the run's end lock theirs in that order too): an UPDATE by `id = ANY` locks rows in the
# order its plan meets them, and two such statements on the same runs deadlocked, which
# PostgreSQL breaks after its deadlock_timeout (1 s by default: every stream paused that long).
# MATERIALIZED: the rows are locked by this clause, whatever the plan makes of `bumped`.
_LOCKED = f"SELECT id FROM {_RUNS.name} WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"


def _with(name: str, clause: str) -> str:
    return f"{name} AS {'MATERIALIZED ' if name == 'locked' else ''}({clause})"


def _bump_clause(groups: bool) -> str:
    """Each run ($1) bumped by its count ($2) while the worker ($3) holds its lease, its
    message group set from $4 where that has one: the runs `locked` holds. (transitions.
    held_bump's UPDATE, which the session's path runs, holds the same condition as SQLAlchemy
    builds it: one count for every run, or a CASE by run.)"""
    runs, at = _RUNS.name, f"array_position($1::text[], {_RUNS.name}.id)"
    group = f", message_group_id = coalesce(($4::text[])[{at}], {runs}.message_group_id)"
    return (
        f"UPDATE {runs} SET last_event_seq = {runs}.last_event_seq + ($2::int[])[{at}]"
        f"{group if groups else ''} FROM locked WHERE {runs}.id = locked.id "
        f"AND {runs}.lease_owner = $3 RETURNING {runs}.id, {runs}.org_id, {runs}.last_event_seq"
    )


def _numbered_clause(events: DriverInsert, dialect: Dialect, number: int) -> tuple[str, int]:
    """The events' rows, each seq counted from its run's bumped last_event_seq, with their
    announcements' parts; and the last parameter's number."""
    arrays, selected = _unnested(_EVENTS, events, dialect, number)
    seq, run = events.keys.index("seq"), events.keys.index("run_id")
    selected[seq] = f"b.last_event_seq + c{seq}"
    columns = ", ".join(
        f"{value} AS {key}" for value, key in zip(selected, events.keys, strict=True)
    )
    parts = [f"${number + len(arrays) + index}::text[]" for index in (1, 2, 3)]
    return (
        f"SELECT {columns}, head, tail, rest FROM unnest({', '.join([*arrays, *parts])}) "
        f"AS v({_names(arrays)}, head, tail, rest) JOIN bumped AS b ON b.id = v.c{run}",
        number + len(arrays) + 3,
    )


def _append_clause(number: int) -> str:
    """Texts at the end of their parts' ($`number` + 1: ids, + 2: more): parts stored by an
    earlier statement (this one's snapshot does not hold those it inserts)."""
    parts = _PARTS.name
    return (
        f"UPDATE {parts} SET text = {parts}.text || v.more FROM unnest(${number + 1}::text[], "
        f"${number + 2}::text[]) AS v(id, more) WHERE {parts}.id = v.id"
    )


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
