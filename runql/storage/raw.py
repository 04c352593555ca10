"""Reads on the raw driver: a Core statement compiled once per shape to the driver's own SQL,
run on a pooled connection's driver connection (asyncpg, aiosqlite), its rows as the driver
gives them (asyncpg Records, tuples), with no result processing and no ORM.

An expanding `IN` list is one parameter on PostgreSQL, so that one prepared statement serves
any number of keys: `= ANY($n)` with an array. On SQLite it is `IN (?, ?, ...)`, a placeholder
a key, as SQLAlchemy renders it: with `IN (SELECT value FROM json_each(?))` SQLite's planner
chose the organization's index over the primary key and scanned every run of the organization
for one id (0.3 ms at 5,000 runs, against microseconds). Values the statement holds (a cursor,
a LIMIT) are taken from its cache key, as SQLAlchemy takes them, and bound through the column
types' bind processors.

Each statement is announced on the engine's cursor events, as SQLAlchemy's own are: whatever
observes statements (counts, metrics, tracing) sees these too.

Connections: on PostgreSQL an asyncpg pool of the database's own; on a SQLite file a connection
used on the event loop's thread, with a time budget per statement (see _SQLiteReader). Each
statement reads its own snapshot on both, as READ COMMITTED gives on PostgreSQL.

Plans on PostgreSQL: the raw pool's sessions let PostgreSQL keep a generic plan for a prepared
statement (plan_cache_mode=auto, where the engine's sessions force a plan per execution,
storage.database.POSTGRES_SESSION), and a statement marked CUSTOM_PLAN (a filtered or cursored
page, whose best plan depends on its values) runs with plan_cache_mode=force_custom_plan, set on
the connection before it and set back before any other statement and before the connection is
kept or returned (see RawReads.all). Planning an `= ANY($1)` read per execution was most of its
cost: a feed of 20's nine reads by key cost about 0.72 ms of backend CPU with custom plans and
0.34 ms with generic ones (a diagnostic: each statement replayed 1,000 times on one connection,
the backend's CPU read from /proc). plan_cache_mode=auto gives a generic plan only where it
costs no more than the custom ones: on 5,000 runs, runs by `id = ANY($1)` kept custom plans at
every read for arrays of 1, 2 or 5 keys (30 of 30) and went generic after five for 20 or 100
keys (pg_prepared_statements, a diagnostic); a read of one key (OneKey) is an equality, which
goes generic.
"""

import asyncio
import contextlib
import json
import re
import sqlite3
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

import asyncpg
import orjson
from sqlalchemy import Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.cache_key import CacheKey
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from runql.storage.database import POSTGRES_SESSION, Announced, Database, sqlite_file

RawRow = Sequence[Any]
Process = Callable[[Any], Any] | None

COMPILED_SHAPES = 512  # statement shapes kept compiled, least recently used dropped first
POOL_SIZE = 5  # raw PostgreSQL connections when the engine's pool has no size to follow
IN_LOOP_SECONDS = 0.005  # a SQLite read on the loop's thread longer than this goes to a thread
IN_LOOP_WALL_SECONDS = 0.05  # ... as does one held up (waiting, not working) longer than this
# SQLite VM steps between looks at the clock: each look is a Python call from SQLite's C code,
# the GIL taken back for it. A sorted page runs ~12,500 steps a millisecond here, so a look comes
# about every 0.8 ms. At 2,000 steps a feed of 20 made 11 looks (2.2 at 10,000), and py-spy
# --gil put 4.9% of a served feed's samples in them (0.8-1.4% at 10,000).
PROGRESS_STEPS = 10_000
TURN_SECONDS = 0.001  # reads on the loop's thread give the loop a turn at least this often
MAX_SPELLINGS = 1024  # SQLite spellings kept per statement (list sizes seen)

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
    expanding: bool = field(init=False)  # whether a slot is a list (SQLite spells it out)
    plain: bool = field(init=False)  # whether no value needs processing

    _spelled: dict[tuple[int, ...], str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "expanding", any(slot.expanding for slot in self.slots))
        object.__setattr__(self, "plain", all(slot.process is None for slot in self.slots))

    def spelled(self, sizes: tuple[int, ...]) -> str:
        """SQLite's SQL for lists of these sizes (a placeholder a key), made once per sizes
        (lists come in at most BATCH keys, so a statement has few)."""
        found = self._spelled.get(sizes)
        if found is None:
            found = self.sql
            lists = iter(sizes)
            for index, slot in enumerate(self.slots):
                if slot.expanding:
                    found = found.replace(_EXPANDED.format(index), ", ".join("?" * next(lists)), 1)
            if len(self._spelled) < MAX_SPELLINGS:
                self._spelled[sizes] = found
        return found


def _pyformat(dialect: Dialect) -> Dialect:
    """The dialect's compiler with named placeholders, which _render numbers itself."""
    dialect_class: Any = type(dialect)
    made: Dialect = dialect_class(paramstyle="pyformat")
    return made


_dialects: dict[str, Dialect] = {}
_EXPANDED = "__RUNQL_KEYS_{}__"  # where SQLite's placeholders for list parameter n go


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
        return f"IN ({_EXPANDED.format(len(order) - 1)})" if expanding else "?"

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
# The last statement objects seen, by identity: most statements are built once per shape
# (functools.cache in runql/fastpath/statements.py), so their cache key is computed once too.
_recent: OrderedDict[tuple[int, str], tuple[ClauseElement, RawStatement, CacheKey]] = OrderedDict()


def compiled_for(statement: ClauseElement, dialect: Dialect) -> tuple[RawStatement, CacheKey]:
    """The statement compiled for the dialect (once per shape), and its cache key."""
    identity = (id(statement), dialect.name)
    seen = _recent.get(identity)
    if seen is not None and seen[0] is statement:
        return seen[1], seen[2]
    found, cache_key = _compiled_shape(statement, dialect)
    _recent[identity] = (statement, found, cache_key)  # holds the object: its id stays its own
    if len(_recent) > COMPILED_SHAPES:
        _recent.popitem(last=False)
    return found, cache_key


def _compiled_shape(statement: ClauseElement, dialect: Dialect) -> tuple[RawStatement, CacheKey]:
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
    return list(value) if process is None else [process(item) for item in value]


def arguments(
    statement: RawStatement, cache_key: CacheKey, params: dict[str, Any], postgres: bool
) -> tuple[str, list[Any]]:
    """The SQL to run (SQLite's lists spelled out, a placeholder a key) and its arguments.
    The caller's parameters are taken as they are; the values a statement holds (a cursor, a
    LIMIT) come from its cache key, placed as SQLAlchemy places them (construct_params)."""
    values: Any = params
    if not all(slot.name in params for slot in statement.slots):
        values = statement.compiled.construct_params(
            params, extracted_parameters=cache_key.bindparams, _check=False
        )
    if statement.plain and (postgres or not statement.expanding):
        return statement.sql, [values[slot.name] for slot in statement.slots]
    if statement.plain:  # SQLite's lists, spelled out (each read by key of a fast-path level)
        bound: list[Any] = [values[slot.name] for slot in statement.slots]
    else:
        bound = [_bound(slot, values[slot.name], postgres) for slot in statement.slots]
    if postgres or not statement.expanding:
        return statement.sql, bound
    flat: list[Any] = []
    sizes: list[int] = []
    for slot, value in zip(statement.slots, bound, strict=True):
        if slot.expanding:
            flat.extend(value)
            sizes.append(len(value))
        else:
            flat.append(value)
    return statement.spelled(tuple(sizes)), flat


@dataclass(frozen=True, slots=True)
class OneKey:
    """A statement of plain parameters with each list holding one key, in the driver's SQL:
    worked out once, so that a read by one key binds its values in order and nothing else,
    each list's one key as the value itself. On SQLite a list is `IN (?)`; on PostgreSQL it is
    `= $n`, not `= ANY($n)` with an array of one: the same rows, but PostgreSQL keeps a generic
    plan for the equality where it planned the `= ANY` read anew each time (a read of a run by
    id: about 84 us of backend CPU and 68 us of client CPU with the array, 27-38 us and 36-53
    us with the equality, a diagnostic: 20,000 reads replayed on one asyncpg connection)."""

    sql: str
    places: tuple[str, ...]  # each position's parameter

    @classmethod
    def of(cls, statement: ClauseElement, dialect: Dialect) -> "OneKey | None":
        """None where a parameter needs processing: `arguments` binds those."""
        raw, _cache_key = compiled_for(statement, dialect)
        if not raw.plain:
            return None
        if dialect.name == "postgresql":
            sql = raw.sql
            for number, slot in enumerate(raw.slots, 1):  # (_render's $n: a slot per name)
                if slot.expanding:
                    sql = sql.replace(f"= ANY(${number})", f"= ${number}")
        else:
            sql = raw.spelled(tuple(1 for slot in raw.slots if slot.expanding))
        return cls(sql, tuple(slot.name for slot in raw.slots))

    def arguments(self, values: dict[str, Any]) -> list[Any]:
        """The driver's arguments, a list's one key given as the value itself."""
        return [values[name] for name in self.places]


Fetch = Callable[[str, list[Any]], Awaitable[Sequence[RawRow]]]
PlanMode = Callable[[bool], Awaitable[None]]  # custom plans (True) or generic ones allowed
FetchNow = Callable[[str, list[Any]], Sequence[RawRow] | None]

# The execution option that marks a statement to be planned for its own values on PostgreSQL
# (`statement.execution_options(runql_custom_plan=True)`): see "Plans" above.
CUSTOM_PLAN = "runql_custom_plan"
RAW_SESSION = {**POSTGRES_SESSION, "plan_cache_mode": "auto"}  # the raw pool's sessions
_PLAN_MODES = {
    True: "SET plan_cache_mode = force_custom_plan",
    False: f"SET plan_cache_mode = {RAW_SESSION['plan_cache_mode']}",
}


@dataclass(slots=True)
class RawReads:
    """Reads on a driver connection: `fetch` runs the driver's SQL with its arguments; on
    PostgreSQL `plan_mode` sets the connection's plan_cache_mode, `custom` being what is set;
    on the loop's SQLite reader, `now` reads at once where it can and `later` on the reader's
    thread (`run_now`)."""

    dialect: Dialect
    dispatch: Any  # the engine's event dispatch: its cursor events announce each statement
    fetch: Fetch
    announced: Announced = field(default_factory=Announced)
    plan_mode: PlanMode | None = None
    custom: bool | None = False  # None: not known (a change of mode that did not finish)
    now: FetchNow | None = None
    later: Fetch | None = None

    @property
    def postgres(self) -> bool:
        return self.dialect.name == "postgresql"

    async def all(self, statement: Executable, params: dict[str, Any]) -> Sequence[RawRow]:
        assert isinstance(statement, ClauseElement)
        raw, cache_key = compiled_for(statement, self.dialect)
        if self.plan_mode is not None:
            await self.plans(bool(statement.get_execution_options().get(CUSTOM_PLAN)))
        return await self.run(*arguments(raw, cache_key, params, self.postgres))

    async def plans(self, custom: bool) -> None:
        """Custom plans for the next statements, or generic ones allowed (PostgreSQL)."""
        if custom is not self.custom and self.plan_mode is not None:
            self.custom = None
            await self.plan_mode(custom)
            self.custom = custom

    async def run(self, sql: str, args: list[Any]) -> Sequence[RawRow]:
        """A statement in the driver's own SQL (on PostgreSQL in autocommit: a statement that
        writes is its own transaction, committed when this returns)."""
        self.dispatch.before_cursor_execute(self.announced, None, sql, args, None, False)
        try:
            return await self.fetch(sql, args)
        finally:
            self.dispatch.after_cursor_execute(self.announced, None, sql, args, None, False)

    def run_now(self, sql: str, args: list[Any]) -> Sequence[RawRow] | None:
        """`run` at once, without a turn of the loop, on the loop's SQLite reader: the rows; or
        None where the statement is not read yet (no loop reader, over its budget, or the
        database busy). A None from a loop reader leaves the statement announced, not ended:
        `run_later` reads it and ends it, as one statement."""
        if self.now is None:
            return None
        self.dispatch.before_cursor_execute(self.announced, None, sql, args, None, False)
        try:
            rows = self.now(sql, args)
        except BaseException:
            self.dispatch.after_cursor_execute(self.announced, None, sql, args, None, False)
            raise
        if rows is not None:
            self.dispatch.after_cursor_execute(self.announced, None, sql, args, None, False)
        return rows

    async def run_later(self, sql: str, args: list[Any]) -> Sequence[RawRow]:
        """The statement `run_now` left announced, read on the reader's thread, and ended."""
        assert self.later is not None, "run_later follows a loop reader's run_now"
        try:
            return await self.later(sql, args)
        finally:
            self.dispatch.after_cursor_execute(self.announced, None, sql, args, None, False)


async def _reset(connection: Any) -> None:
    """Raw reads leave no session state (no LISTEN or locks) for a pool to reset but the plan
    mode, which a read that failed may have left at custom plans."""
    await connection.execute(_PLAN_MODES[False])


async def _plan_mode(connection: Any, custom: bool) -> None:
    await connection.execute(_PLAN_MODES[custom])


_LONG_NUMBER = re.compile(r"\d{19,}")  # may pass 64 bits: orjson would make it a float
_LONG_NUMBER_BYTES = re.compile(rb"\d{19,}")


def json_value(text: str | bytes) -> Any:
    """A stored JSON text's value exactly as json.loads (the column type's and SQLAlchemy's
    dialect's decoder) gives it, by orjson where that is the same value (several times
    faster): not where a run of 19 digits or more may be an integer beyond 64 bits, which
    orjson reads as a float, nor where orjson refuses the text (NaN, lone surrogates)."""
    pattern = _LONG_NUMBER if isinstance(text, str) else _LONG_NUMBER_BYTES
    if pattern.search(text) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


async def _json_codecs(connection: Any) -> None:
    """JSON and JSONB decoded as SQLAlchemy's dialect decodes them on its own connections."""
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=json.dumps, decoder=json_value, schema="pg_catalog"
        )


def _alive(held: Any) -> bool:
    """Whether a connection of the pool is still open and ours: asyncpg hands one the server
    ended back to its pool by itself (then any call on it raises InterfaceError)."""
    try:
        return not held.is_closed()
    except asyncpg.InterfaceError:
        return False


class _PostgresPool:
    """An asyncpg pool of the database's own, beside the engine's: no SQLAlchemy checkout, no
    pre-ping and no reset round trip per read. Each statement runs in autocommit, its own
    snapshot, as each statement of a READ COMMITTED transaction does.

    A connection whose reads ended cleanly is kept aside (`_idle`) for the next reads rather
    than handed back: asyncpg's release (a shielded task, a reset, an inactivity timer) and
    acquire (a queue, a future) cost a point read about a tenth of its time. The pool is this
    class's alone, so it counts what it took (`_out`: held by readers, kept aside, or being
    acquired) and never asks the pool for more than it has: when every connection is out, a
    reader waits here (`_handoff`, first come first served) and the next reader to end
    cleanly hands it its connection as it is, rather than through the pool's release and its
    reset's round trip (about 6% of a served read by id on PostgreSQL at 3,500/s went to
    those). A connection goes back to the pool, which resets it, waits out a cancelled query
    or replaces a broken connection, after any failure or cancellation (a waiter then takes
    the pool's next one), and at close."""

    def __init__(self, database: Database) -> None:
        url = database.engine.url.set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._database = database
        pool: Any = database.engine.pool
        self._size = int(pool.size()) if hasattr(pool, "size") else POOL_SIZE
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._idle: list[Any] = []  # the pool's connections kept for the next reads
        self._out = 0  # connections of the current pool taken: held, kept or being acquired
        # readers waiting for another's connection: each gets one, or None (take the pool's)
        self._handoff: deque[asyncio.Future[Any]] = deque()
        database.on_dispose(self.close)

    def connection(self) -> "_Held":
        """A connection for one request's reads (an async context manager)."""
        return _Held(self)

    async def pool(self) -> Any:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._size,
                        init=_json_codecs,
                        reset=_reset,
                        server_settings=RAW_SESSION,
                    )
        return self._pool

    async def take(self, pool: Any) -> Any:
        """A connection for a reader: one kept aside if it is alive, else the pool's while it
        has one to spare, else one another reader hands over."""
        while self._idle:
            held = self._idle.pop()
            if _alive(held):
                return held
            await self._release(held, pool)  # the server ended it while kept: replaced
        while True:
            if pool is not self._pool or self._out < self._size:  # (a closed pool refuses)
                self._out += pool is self._pool
                try:
                    return await pool.acquire()
                except BaseException:
                    self._forget(pool)
                    raise
            held = await self.handed(pool)
            if held is not None:
                return held

    async def handed(self, pool: Any) -> Any:
        """The connection a reader ending cleanly hands over, or None: take the pool's."""
        waiting: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._handoff.append(waiting)
        try:
            return await waiting
        except BaseException:  # cancelled: what it was given goes to the next reader
            if waiting.done() and not waiting.cancelled():
                if waiting.result() is None:
                    self._wake(None)
                else:
                    await self.give_back(waiting.result(), pool, clean=True)
            raise

    def _wake(self, held: Any) -> bool:
        """Hand `held` (None: a turn at the pool) to the first reader still waiting."""
        while self._handoff:
            waiting = self._handoff.popleft()
            if not waiting.done():
                waiting.set_result(held)
                return True
        return False

    async def give_back(self, held: Any, pool: Any, clean: bool) -> None:
        """A reader's connection: handed to a waiting reader or kept, after clean reads on
        a live connection of the current pool; else back to the pool, which resets it."""
        if clean and self._pool is pool and _alive(held):
            if not self._wake(held):
                self._idle.append(held)
            return
        await self._release(held, pool)

    async def _release(self, held: Any, pool: Any) -> None:
        try:
            await pool.release(held)
        finally:
            self._forget(pool)

    def _forget(self, pool: Any) -> None:
        """A connection of `pool` no longer taken: a waiting reader may take the pool's."""
        if pool is self._pool:
            self._out -= 1
            self._wake(None)

    async def close(self) -> None:
        _sources.pop(self._database, None)  # the database may be used again: open anew
        if self._pool is not None:  # readers still out give theirs back (not ours now)
            pool, self._pool = self._pool, None
            self._out = 0
            while self._wake(None):  # waiting readers find the pool closing
                pass
            idle, self._idle = self._idle, []
            for held in idle:
                await pool.release(held)
            await pool.close()


class _Held:
    """One request's connection of a _PostgresPool: one kept aside if there is one (and
    alive), else the pool's; given back as `_PostgresPool` says. A class rather than a
    generator's context manager: every PostgreSQL read of a request enters one."""

    __slots__ = ("_held", "_pool", "_source")

    def __init__(self, source: _PostgresPool) -> None:
        self._source = source

    async def __aenter__(self) -> Any:
        source = self._source
        pool = source._pool if source._pool is not None else await source.pool()
        self._pool = pool
        self._held = await source.take(pool)
        return self._held

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        await self._source.give_back(self._held, self._pool, clean=kind is None)


class _SQLiteReader:
    """SQLite reads on the event loop's thread, on a connection of their own (WAL: readers do
    not wait for the writer), each statement its own snapshot as on PostgreSQL. A handoff to a
    driver thread costs more than a point lookup itself, so reads run where the request runs;
    one that passes IN_LOOP_SECONDS is interrupted and run again on a thread of its own, so a
    big read never stalls the loop for long. The budget is the loop thread's own CPU time: a
    read the system preempts (other processes on its core) has not grown, and starting it
    again on a thread would only throw its work away (on a loaded machine about one feed
    statement in twenty did, 5 ms each). A read that waits without working (for storage) is
    bounded by the clock instead, at IN_LOOP_WALL_SECONDS. Reads give the loop a turn (others'
    requests, and timeouts: an operation's timeout fires at a turn) once TURN_SECONDS of the
    clock have passed since the last they gave, not after each read: a feed of 20's seven
    reads took seven turns, each letting other requests in between its reads (runql serve
    pinned to one core, feed20 at 250/s, alternating with main: 2.16 -> 2.06 ms of server CPU
    a request, a diagnostic)."""

    def __init__(self, path: str, database: Database) -> None:
        self._path = path
        self._database = database
        self._loop_connection: sqlite3.Connection | None = None
        self._thread_connection: sqlite3.Connection | None = None
        self._threaded = asyncio.Lock()
        self._deadline = 0.0  # of the loop thread's CPU time
        self._wall_deadline = 0.0
        self._first_look = 0.0  # of the clock: the CPU time cannot be over budget before
        self._turned = 0.0  # of the clock: when a read last gave the loop a turn
        database.on_dispose(self.close)

    def _open(self, progress: bool) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA query_only=ON")
        connection.execute(f"PRAGMA busy_timeout={0 if progress else 10_000}")
        if progress:
            connection.set_progress_handler(self._over_budget, PROGRESS_STEPS)
        return connection

    def _over_budget(self) -> int:
        """Called every PROGRESS_STEPS steps of a read: the thread's CPU time (a system call)
        is read at the first call, which starts the CPU budget (a read of fewer steps, such as
        a point read, makes no such call: it was one system call a request), and again only
        once the read has taken IN_LOOP_SECONDS of the clock, before which it cannot have used
        more than that (on a feed of 20, the calls were 6% of the plan's Python time). The
        steps before the first call are not counted, as the steps between two calls are not
        seen: the budget holds to PROGRESS_STEPS steps either way."""
        if self._deadline == 0.0:  # the first call of this read
            self._deadline = time.thread_time() + IN_LOOP_SECONDS
        now = time.perf_counter()
        if now < self._first_look:
            return 0
        return int(now > self._wall_deadline or time.thread_time() > self._deadline)

    async def fetch(self, sql: str, args: list[Any]) -> Sequence[RawRow]:
        rows = self.fetch_now(sql, args)
        if rows is None:  # over budget, or busy: on a thread, without either
            return await self.threaded_fetch(sql, args)
        if time.perf_counter() - self._turned >= TURN_SECONDS:
            await asyncio.sleep(0)  # a turn of the loop: others' requests, timeouts, cancellation
            self._turned = time.perf_counter()
        return rows

    def fetch_now(self, sql: str, args: list[Any]) -> list[Any] | None:
        """The rows read on the loop's thread within the budget, with no turn of the loop
        after them (for a request's last statement, which ends its turn anyway); None where
        the budget ran out or the database was busy: `threaded_fetch` reads it then."""
        connection = self._loop_connection
        if connection is None:
            connection = self._loop_connection = self._open(progress=True)
        self._deadline = 0.0  # the thread's CPU budget: set at the first progress call
        started = time.perf_counter()
        self._first_look = started + IN_LOOP_SECONDS
        self._wall_deadline = started + IN_LOOP_WALL_SECONDS
        try:
            return connection.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return None

    async def threaded_fetch(self, sql: str, args: list[Any]) -> Sequence[RawRow]:
        """One read at a time on the thread's connection. A caller cancelled (a timeout, a
        client gone) interrupts the read and waits for the thread to let go of it."""
        async with self._threaded:
            if self._thread_connection is None:
                self._thread_connection = self._open(progress=False)
            connection = self._thread_connection
            reading = asyncio.ensure_future(asyncio.to_thread(_fetch_all, connection, sql, args))
            try:
                return await asyncio.shield(reading)
            except asyncio.CancelledError:
                connection.interrupt()
                with contextlib.suppress(sqlite3.Error):
                    await reading
                raise

    async def close(self) -> None:
        for connection in (self._loop_connection, self._thread_connection):
            if connection is not None:
                connection.close()
        self._loop_connection = self._thread_connection = None
        _sources.pop(self._database, None)  # the database may be used again: open anew
        _loops.pop(id(self._database), None)


_sources: WeakKeyDictionary[Database, "_PostgresPool | _SQLiteReader"] = WeakKeyDictionary()


def _source(database: Database) -> "_PostgresPool | _SQLiteReader | None":
    """The database's raw read connections; None for an in-memory SQLite database, which only
    the engine's own connection can see."""
    found = _sources.get(database)
    if found is None:
        url = database.engine.url.render_as_string(hide_password=False)
        if not database.is_sqlite:
            found = _PostgresPool(database)
        elif (path := sqlite_file(url)) is not None:
            found = _SQLiteReader(path, database)
        else:
            return None
        _sources[database] = found
    return found


def _engine_parts(database: Database) -> tuple[Dialect, Any]:
    """The engine's dialect and event dispatch (each an attribute chain through the async
    engine's proxy: read once per database)."""
    found = _parts.get(database)
    if found is None:
        found = _parts[database] = (database.engine.dialect, database.engine.sync_engine.dispatch)
    return found


_parts: WeakKeyDictionary[Database, tuple[Dialect, Any]] = WeakKeyDictionary()


# By the database's id, what loop_reads needs of it (found once: a WeakKeyDictionary's look-up
# is Python code, twice a request): a reference to it, its loop reader (None: it has none),
# the engine's dialect and event dispatch. An entry goes with its database, or its reader.
_Loop = tuple["weakref.ref[Database]", "_SQLiteReader | None", Dialect | None, Any]
_loops: dict[int, _Loop] = {}


def _loop_of(database: Database) -> _Loop:
    key = id(database)
    found = _loops.get(key)
    if found is None or found[0]() is not database:
        source = _source(database)
        reader = source if isinstance(source, _SQLiteReader) else None
        dialect, dispatch = _engine_parts(database) if reader is not None else (None, None)
        gone = weakref.ref(database, lambda _ref: _loops.pop(key, None))
        found = _loops[key] = (gone, reader, dialect, dispatch)
    return found


def loop_reads(database: Database) -> RawReads | None:
    """On a SQLite file, the reads of one request on the loop's own reader, which hold no
    connection to give back (no context to enter); None elsewhere: use raw_reads."""
    _ref, reader, dialect, dispatch = _loop_of(database)
    if reader is None or dialect is None:
        return None
    return RawReads(
        dialect, dispatch, reader.fetch, now=reader.fetch_now, later=reader.threaded_fetch
    )


def raw_reads(database: Database) -> AbstractAsyncContextManager[RawReads]:
    """Raw reads of one request: on PostgreSQL one connection of the raw pool, on a SQLite file
    the loop's own reader, each statement its own snapshot; on an in-memory SQLite database a
    connection of the engine's pool."""
    source = _source(database)
    dialect, dispatch = _engine_parts(database)
    if isinstance(source, _PostgresPool):
        return _PostgresReads(source.connection(), dialect, dispatch)
    return _other_reads(database, source, dialect, dispatch)


class _PostgresReads:
    """raw_reads on PostgreSQL: reads on one connection of the raw pool, given back with
    generic plans allowed (a class, as _Held is)."""

    __slots__ = ("_dialect", "_dispatch", "_held", "_reads")

    def __init__(self, held: _Held, dialect: Dialect, dispatch: Any) -> None:
        self._held = held
        self._dialect = dialect
        self._dispatch = dispatch

    async def __aenter__(self) -> RawReads:
        connection = await self._held.__aenter__()
        self._reads = RawReads(
            self._dialect,
            self._dispatch,
            partial(_fetch_postgres, connection),
            plan_mode=partial(_plan_mode, connection),
        )
        return self._reads

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: Any
    ) -> None:
        if kind is None:
            try:
                await self._reads.plans(False)  # kept or returned with generic plans allowed
            except BaseException as failed:
                await self._held.__aexit__(type(failed), failed, failed.__traceback__)
                raise
        await self._held.__aexit__(kind, error, trace)


@asynccontextmanager
async def _other_reads(
    database: Database, source: object, dialect: Dialect, dispatch: Any
) -> AsyncIterator[RawReads]:
    if isinstance(source, _SQLiteReader):
        yield RawReads(dialect, dispatch, source.fetch)
    else:
        async with database.engine.connect() as engine_connection:
            raw = await engine_connection.get_raw_connection()
            yield RawReads(dialect, dispatch, partial(_fetch_aiosqlite, raw.driver_connection))


def _fetch_all(connection: sqlite3.Connection, sql: str, args: list[Any]) -> list[Any]:
    return connection.execute(sql, args).fetchall()


async def _fetch_postgres(connection: Any, sql: str, args: list[Any]) -> Sequence[RawRow]:
    rows: Sequence[RawRow] = await connection.fetch(sql, *args)
    return rows


async def _fetch_aiosqlite(connection: Any, sql: str, args: list[Any]) -> Sequence[RawRow]:
    return list(await connection.execute_fetchall(sql, args))
