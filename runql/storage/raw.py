"""Reads on the raw driver: a Core statement compiled once per shape to the driver's own SQL,
run on a pooled connection's driver connection (asyncpg, aiosqlite), its rows as the driver
gives them (asyncpg Records, tuples), with no result processing and no ORM.

An expanding `IN` list is one parameter, so that one prepared statement serves any number of
keys: `= ANY($n)` with an array on PostgreSQL, `IN (SELECT value FROM json_each(?))` with a JSON
array on SQLite. Values the statement holds (a cursor, a LIMIT) are taken from its cache key,
as SQLAlchemy takes them, and bound through the column types' bind processors.

Each statement is announced on the engine's cursor events, as SQLAlchemy's own are: whatever
observes statements (counts, metrics, tracing) sees these too.

SQLite reads stay on aiosqlite (a thread hop per statement) rather than sqlite3 on the event
loop's thread: the feed's 7 statements at first: 100 took 3.2-4.0 ms either way, and on the
loop a single statement (1-1.6 ms there, more for bigger pages) would stall every request.
"""

import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.cache_key import CacheKey
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from runql.storage.database import Database

RawRow = Sequence[Any]
Process = Callable[[Any], Any] | None

COMPILED_SHAPES = 512  # statement shapes kept compiled, least recently used dropped first

# In SQL compiled with the pyformat paramstyle: a value, or an expanding list in IN ( ).
_PLACEHOLDER = re.compile(r"(?<!NOT )IN \(__\[POSTCOMPILE_(\w+)\]\)|%\((\w+)\)s")


@dataclass(frozen=True, slots=True)
class Slot:
    """One positional parameter: the bound parameter it takes, whether it is a list."""

    name: str
    expanding: bool
    process: Process


@dataclass(frozen=True, slots=True)
class RawStatement:
    sql: str
    slots: tuple[Slot, ...]
    compiled: SQLCompiler


def _pyformat(dialect: Dialect) -> Dialect:
    """The dialect's compiler with named placeholders, which _render numbers itself."""
    dialect_class: Any = type(dialect)
    made: Dialect = dialect_class(paramstyle="pyformat")
    return made


_dialects: dict[str, Dialect] = {}


def _render(sql: str, postgres: bool) -> tuple[str, list[tuple[str, bool]]]:
    """Placeholders to the driver's: $n (one per name) on PostgreSQL, ? (one per use) on
    SQLite; expanding lists to one array parameter."""
    order: list[tuple[str, bool]] = []
    numbers: dict[str, int] = {}

    def place(match: re.Match[str]) -> str:
        expanding = match.group(1) is not None
        name = match.group(1) or match.group(2)
        if postgres:
            if name not in numbers:
                order.append((name, expanding))
                numbers[name] = len(order)
            marker = f"${numbers[name]}"
            return f"= ANY({marker})" if expanding else marker
        order.append((name, expanding))
        return "IN (SELECT value FROM json_each(?))" if expanding else "?"

    return _PLACEHOLDER.sub(place, sql), order


def _processor(compiled: SQLCompiler, name: str) -> Process:
    """What SQLAlchemy binds the parameter's values through (None: as they are)."""
    found = compiled._bind_processors.get(name)
    if found is None or callable(found):
        return found
    raise ValueError(f"no raw binding for the tuple parameter {name!r}")


def _compile(statement: ClauseElement, dialect: Dialect, cache_key: CacheKey) -> RawStatement:
    named = _dialects.get(dialect.name)
    if named is None:
        named = _dialects[dialect.name] = _pyformat(dialect)
    compiled = named.statement_compiler(named, statement, cache_key=cache_key)
    sql, order = _render(compiled.string, dialect.name == "postgresql")
    if "__[POSTCOMPILE_" in sql:  # NOT IN, or a list outside IN ( ): not rendered here
        raise ValueError(f"no raw rendering for {compiled.string!r}")
    slots = tuple(Slot(name, expanding, _processor(compiled, name)) for name, expanding in order)
    return RawStatement(sql, slots, compiled)


_compiled: OrderedDict[tuple[str, Any], RawStatement] = OrderedDict()


def compiled_for(statement: ClauseElement, dialect: Dialect) -> tuple[RawStatement, CacheKey]:
    """The statement compiled for the dialect (once per shape), and its cache key."""
    cache_key = statement._generate_cache_key()
    assert cache_key is not None, "every fast-path statement is cacheable"
    shape = (dialect.name, cache_key.key)
    found = _compiled.get(shape)
    if found is None:
        found = _compiled[shape] = _compile(statement, dialect, cache_key)
        if len(_compiled) > COMPILED_SHAPES:
            _compiled.popitem(last=False)
    else:
        _compiled.move_to_end(shape)
    return found, cache_key


def _bound(slot: Slot, value: Any, postgres: bool) -> Any:
    process = slot.process
    if not slot.expanding:
        return value if process is None or value is None else process(value)
    values = list(value) if process is None else [process(item) for item in value]
    return values if postgres else json.dumps(values)


def arguments(statement: RawStatement, cache_key: CacheKey, params: dict[str, Any],
              postgres: bool) -> list[Any]:
    values = statement.compiled.construct_params(
        params, extracted_parameters=cache_key.bindparams, _check=False)
    return [_bound(slot, values[slot.name], postgres) for slot in statement.slots]


@dataclass
class RawReads:
    """Reads on one pooled connection's driver connection."""

    connection: AsyncConnection
    driver: Any  # asyncpg.Connection or aiosqlite.Connection
    dialect: Dialect

    @property
    def postgres(self) -> bool:
        return self.dialect.name == "postgresql"

    async def all(self, statement: Executable, params: dict[str, Any]) -> Sequence[RawRow]:
        assert isinstance(statement, ClauseElement)
        raw, cache_key = compiled_for(statement, self.dialect)
        args = arguments(raw, cache_key, params, self.postgres)
        sync: Connection = self.connection.sync_connection  # type: ignore[assignment]
        dispatch = sync.dispatch
        dispatch.before_cursor_execute(sync, None, raw.sql, args, None, False)
        try:
            if self.postgres:
                rows: Sequence[RawRow] = await self.driver.fetch(raw.sql, *args)
            else:
                rows = list(await self.driver.execute_fetchall(raw.sql, args))
        finally:
            dispatch.after_cursor_execute(sync, None, raw.sql, args, None, False)
        return rows


@asynccontextmanager
async def raw_reads(database: Database) -> AsyncIterator[RawReads]:
    """A pooled connection in one read transaction, as `Database.read` gives: on SQLite
    BEGIN DEFERRED (one snapshot for all the reads); on PostgreSQL the driver adapter's BEGIN
    is lazy and raw reads never send it, so each statement reads in autocommit, its own
    snapshot, as each statement of a READ COMMITTED transaction does."""
    async with database.engine.connect() as connection:
        await connection.begin()
        raw = await connection.get_raw_connection()
        yield RawReads(connection, raw.driver_connection, database.engine.dialect)
