"""Reads on the raw driver (storage.raw): the same rows as SQLAlchemy's execution of the same
statement, one parameter for a list of any length, the statement's own values bound anew
each time, each statement counted, each statement its own snapshot, and SQLite's long reads
off the event loop's thread."""

import asyncio
import json
import sqlite3
import threading
import time
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Select, bindparam, func, select

from runql.auth.keys import organization
from runql.storage import raw
from runql.storage.database import Database, counting_statements
from runql.storage.raw import arguments, compiled_for, raw_reads
from runql.storage.tables import OrganizationRow, RunRow

RUNS = RunRow.__table__  # type: ignore[attr-defined]
ORGANIZATIONS = OrganizationRow.__table__  # type: ignore[attr-defined]


async def _by_sqlalchemy(
    database: Database, statement: Select[Any], params: dict[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    async with database.engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(statement, params or {})]


async def _raw(
    database: Database, statement: Select[Any], params: dict[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    async with raw_reads(database) as reads:
        return [tuple(row) for row in await reads.all(statement, params or {})]


def _sql_and_args(database: Database, statement: Select[Any]) -> tuple[str, list[Any]]:
    compiled, cache_key = compiled_for(statement, database.engine.dialect)
    return arguments(compiled, cache_key, {}, postgres=False)


async def test_a_list_of_any_length_is_one_parameter(demo_database: Database) -> None:
    statement = select(RUNS.c.id).where(RUNS.c.id.in_(bindparam("ids", expanding=True)))
    compiled, _ = compiled_for(statement, demo_database.engine.dialect)
    assert len(compiled.slots) == 1
    every = [row[0] for row in await _by_sqlalchemy(demo_database, select(RUNS.c.id))]
    assert len(every) > 100
    for ids in ([], every[:1], every, [*every, *(f"run_missing{n}" for n in range(1500))]):
        found = [row[0] for row in await _raw(demo_database, statement, {"ids": ids})]
        assert sorted(found) == sorted(ids[: len(every)])


@pytest.mark.parametrize("limit", [1, 7])
async def test_values_the_statement_holds_are_bound_each_time(
    demo_database: Database, limit: int
) -> None:
    """A cursor's instant and a LIMIT live in the statement: two statements of one shape
    share the compiled SQL, never the values."""
    times = [
        row[0]
        for row in await _by_sqlalchemy(
            demo_database, select(RUNS.c.created_at).order_by(RUNS.c.created_at)
        )
    ]
    for instant in (times[len(times) // 2], times[-1] + timedelta(seconds=1)):
        statement = (
            select(RUNS.c.id, RUNS.c.status)
            .where(RUNS.c.created_at < instant)
            .order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
            .limit(limit)
        )
        expected = await _by_sqlalchemy(demo_database, statement)
        assert len(expected) == limit
        assert await _raw(demo_database, statement) == expected


async def test_each_raw_statement_is_counted(demo_database: Database) -> None:
    statement = select(RUNS.c.id).limit(3)
    async with counting_statements() as count, raw_reads(demo_database) as reads:
        await reads.all(statement, {})
        await reads.all(statement, {})
    assert count.statements == 2
    assert count.seconds > 0


async def test_each_statement_reads_its_own_snapshot(database: Database) -> None:
    """Both databases: a commit between two reads of one request is seen by the second, as
    READ COMMITTED statements see it on PostgreSQL."""
    await organization(database, "Before")
    statement = select(ORGANIZATIONS.c.name).order_by(ORGANIZATIONS.c.name)
    async with raw_reads(database) as reads:
        first = [row[0] for row in await reads.all(statement, {})]
        await organization(database, "After")  # committed by another connection
        second = [row[0] for row in await reads.all(statement, {})]
    assert "After" not in first
    assert "After" in second


async def test_a_long_sqlite_read_leaves_the_loop_and_still_answers(
    demo_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over its budget on the loop's thread, a SQLite read is interrupted and run again on a
    thread: the same rows, and the loop was held no longer than the budget."""
    if not demo_database.is_sqlite:
        pytest.skip("the in-loop reader is SQLite's")
    statement = select(RUNS.c.id).order_by(RUNS.c.id)
    async with raw_reads(demo_database) as reads:
        expected = [tuple(row) for row in await reads.all(statement, {})]
    monkeypatch.setattr(raw, "IN_LOOP_SECONDS", 0.0)  # every read is over budget
    monkeypatch.setattr(raw, "PROGRESS_STEPS", 1)
    threads: list[str] = []
    original = raw._fetch_all

    def on_thread(connection: sqlite3.Connection, sql: str, args: list[Any]) -> list[Any]:
        threads.append(threading.current_thread().name)
        return original(connection, sql, args)

    monkeypatch.setattr(raw, "_fetch_all", on_thread)
    reader = raw._SQLiteReader(str(demo_database.engine.url.database), demo_database)
    rows = await reader.fetch(*_sql_and_args(demo_database, statement))
    assert [tuple(row) for row in rows] == expected
    assert threads
    assert threads[0] != threading.current_thread().name


async def test_a_short_sqlite_read_on_the_loop_reads_no_cpu_clock(
    demo_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of fewer than PROGRESS_STEPS steps (a point read) makes no system call for the
    thread's CPU time: its budget starts at the first progress call, which it never reaches."""
    if not demo_database.is_sqlite:
        pytest.skip("the in-loop reader is SQLite's")
    run_id = (await _by_sqlalchemy(demo_database, select(RUNS.c.id)))[0][0]
    reader = raw._SQLiteReader(str(demo_database.engine.url.database), demo_database)
    calls: list[float] = []
    clock = time.thread_time

    def counted() -> float:
        calls.append(clock())
        return calls[-1]

    monkeypatch.setattr(time, "thread_time", counted)
    rows = reader.fetch_now("SELECT id FROM runs WHERE id = ?", [run_id])
    assert rows == [(run_id,)]
    assert calls == []


async def test_quick_sqlite_reads_give_the_loop_a_turn_once_they_have_held_it(
    demo_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads on the loop's reader give the loop a turn once they have held it for
    TURN_SECONDS since the last they gave, not after each read."""
    if not demo_database.is_sqlite:
        pytest.skip("the in-loop reader is SQLite's")
    reader = raw._SQLiteReader(str(demo_database.engine.url.database), demo_database)
    sql, args = _sql_and_args(demo_database, select(RUNS.c.id).limit(1))
    turns = 0

    async def counting() -> None:  # one step a turn of the loop
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(counting())
    try:
        await asyncio.sleep(0)
        await reader.fetch(sql, args)  # the reader's first: a turn
        before = turns
        for _ in range(5):
            await reader.fetch(sql, args)
        assert turns - before <= 2  # (a slow machine may pass TURN_SECONDS, rarely twice)
        monkeypatch.setattr(raw, "TURN_SECONDS", 0.0)  # the loop held too long: a turn
        before = turns
        await reader.fetch(sql, args)
        assert turns == before + 1
    finally:
        counter.cancel()


async def test_a_sqlite_read_that_waits_without_working_stays_on_the_loop(
    demo_database: Database,
) -> None:
    """The budget is the loop thread's CPU time: a read held up without working (as one the
    system preempts is) well past IN_LOOP_SECONDS of wall time is not started again on a
    thread, which would throw its work away."""
    if not demo_database.is_sqlite:
        pytest.skip("the in-loop reader is SQLite's")
    reader = raw._SQLiteReader(str(demo_database.engine.url.database), demo_database)
    await reader.fetch("SELECT 1", [])  # opens the loop's connection
    assert reader._loop_connection is not None
    paused: list[float] = []

    def pause() -> int:  # the statement waits 4 x the budget, using no CPU
        if not paused:
            paused.append(time.perf_counter())
            time.sleep(4 * raw.IN_LOOP_SECONDS)
        return 1

    reader._loop_connection.create_function("pause", 0, pause)
    rows = await reader.fetch(  # the pause first, then some thousands of VM steps
        "WITH RECURSIVE n(i) AS (SELECT pause() UNION ALL SELECT i + 1 FROM n WHERE i < 5000)"
        " SELECT count(*) FROM n",
        [],
    )
    assert [tuple(row) for row in rows] == [(5000,)]
    assert paused
    assert reader._thread_connection is None  # (the thread's has no pause(): it would fail)
    await reader.close()


async def test_a_sqlite_read_held_up_past_the_wall_budget_leaves_the_loop(
    demo_database: Database,
) -> None:
    """A read that waits without working (as one held up by slow storage does) for longer
    than IN_LOOP_WALL_SECONDS is started again on a thread: the loop is not stalled for as long
    as its waits last."""
    if not demo_database.is_sqlite:
        pytest.skip("the in-loop reader is SQLite's")
    reader = raw._SQLiteReader(str(demo_database.engine.url.database), demo_database)
    await reader.fetch("SELECT 1", [])  # opens the loop's connection
    reader._thread_connection = reader._open(progress=False)
    loop_thread = threading.current_thread().name
    waits_on: list[str] = []

    def pause() -> int:  # on the loop, a wait of 2 x the wall budget, using no CPU
        waits_on.append(threading.current_thread().name)
        if threading.current_thread().name == loop_thread:
            time.sleep(2 * raw.IN_LOOP_WALL_SECONDS)
        return 1

    for connection in (reader._loop_connection, reader._thread_connection):
        assert connection is not None
        connection.create_function("pause", 0, pause)
    started = time.perf_counter()
    rows = await reader.fetch(
        "WITH RECURSIVE n(i) AS (SELECT pause() UNION ALL SELECT i + 1 FROM n WHERE i < 5000)"
        " SELECT count(*) FROM n",
        [],
    )
    assert [tuple(row) for row in rows] == [(5000,)]
    assert waits_on[0] == loop_thread
    assert waits_on[-1] != loop_thread  # read again on the thread
    assert time.perf_counter() - started < 10
    await reader.close()


async def test_a_cancelled_read_on_the_thread_is_interrupted(
    demo_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read gone to the thread whose caller is cancelled (a timeout) is interrupted, and the
    thread's connection is free for the next read at once."""
    if not demo_database.is_sqlite:
        pytest.skip("the in-loop reader is SQLite's")
    monkeypatch.setattr(raw, "IN_LOOP_SECONDS", 0.0)
    monkeypatch.setattr(raw, "PROGRESS_STEPS", 1)
    reader = raw._SQLiteReader(str(demo_database.engine.url.database), demo_database)
    slow = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000)"
        " SELECT count(*) FROM n"
    )
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await reader.fetch(slow, [])
    assert time.perf_counter() - started < 2  # interrupted, not run to its end
    statement = select(RUNS.c.id).limit(1)
    assert len(await reader.fetch(*_sql_and_args(demo_database, statement))) == 1
    await reader.close()


JSON_TEXTS = (
    '{"n": 123456789012345678901234567890, "m": [18446744073709551616, -9223372036854775809]}',
    '{"a": 1.5e300, "b": [1, 2, {"c": null}], "d": "\\u00e9", "e": 0.1, "f": -0.0}',
    '{"k": 9223372036854775807, "s": "1234567890123456789012"}',
)


@pytest.mark.parametrize("text", JSON_TEXTS)
def test_a_json_text_is_the_value_json_gives(text: str) -> None:
    """orjson reads an integer beyond 64 bits as a float: those texts are json's to read."""
    assert repr(raw.json_value(text)) == repr(json.loads(text))
    assert repr(raw.json_value(text.encode())) == repr(json.loads(text))


async def test_postgresql_json_columns_are_decoded_as_sqlalchemy_decodes_them(
    demo_database: Database,
) -> None:
    if demo_database.is_sqlite:
        pytest.skip("PostgreSQL's codecs (SQLite's JSON is text, decoded by the fast path)")
    async with raw_reads(demo_database) as reads:
        for text in JSON_TEXTS:
            rows = await reads.run(
                "SELECT $1::text::jsonb, $1::text::jsonb::text, $1::text::json, $1::text", [text]
            )
            jsonb, jsonb_text, json_, json_text = rows[0]
            # (an integer read as a float is unequal to it)
            assert jsonb == json.loads(jsonb_text)
            assert json_ == json.loads(json_text)


async def _backend_pid(database: Database, sleep: float = 0) -> int:
    async with raw_reads(database) as reads:
        rows = await reads.run("SELECT pg_backend_pid(), pg_sleep($1::float8)", [sleep])
        return int(rows[0][0])


def _postgres_only(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("PostgreSQL's raw pool")


async def test_postgres_sessions_weigh_index_reads_as_reads_from_memory(
    database: Database,
) -> None:
    """Raw reads and the engine's connections alike: a batch's plan reads its keys by index,
    not every row of the organization (random_page_cost 1.1, not a disk's 4)."""
    _postgres_only(database)
    async with raw_reads(database) as reads:
        rows = await reads.run("SELECT current_setting('random_page_cost')", [])
    assert rows[0][0] == "1.1"
    async with database.engine.connect() as connection:
        found = await connection.exec_driver_sql("SELECT current_setting('random_page_cost')")
        assert found.scalar_one() == "1.1"


async def test_postgres_reads_keep_their_connection_from_the_pool(database: Database) -> None:
    """One request's reads after another's on the same connection, kept aside: not handed back
    to asyncpg's pool in between (its release and acquire cost a point read a tenth)."""
    _postgres_only(database)
    first = await _backend_pid(database)
    pool = await raw._source(database).pool()  # type: ignore[union-attr]
    idle_in_pool = pool.get_idle_size()
    assert await _backend_pid(database) == first
    assert pool.get_idle_size() == idle_in_pool
    assert pool.get_size() - pool.get_idle_size() >= 1  # the one kept aside


async def test_a_cancelled_postgres_read_gives_its_connection_back_to_the_pool(
    database: Database,
) -> None:
    _postgres_only(database)
    await _backend_pid(database)
    reading = asyncio.ensure_future(_backend_pid(database, sleep=30))
    await asyncio.sleep(0.3)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    started = time.monotonic()
    assert await asyncio.wait_for(_backend_pid(database), 10) > 0
    assert time.monotonic() - started < 5  # not behind the cancelled query's 30 s


async def test_more_postgres_readers_than_connections_all_read(database: Database) -> None:
    """Readers that wait for the pool get the connections others finish with."""
    _postgres_only(database)
    await _backend_pid(database)
    pool = await raw._source(database).pool()  # type: ignore[union-attr]
    readers = 4 * pool.get_max_size()
    found = await asyncio.wait_for(
        asyncio.gather(*(_backend_pid(database, sleep=0.05) for _ in range(readers))), 20
    )
    assert len(found) == readers
    assert len(set(found)) <= pool.get_max_size()
    await asyncio.wait_for(database.dispose(), 10)  # every connection back, the pool closed


async def test_readers_past_the_pool_s_size_take_others_connections_without_a_reset(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every connection out, a reader waits for one that another reader ends with, handed
    over as it is: nothing goes back through the pool (whose release resets, a round trip)."""
    _postgres_only(database)
    await _backend_pid(database)
    pool = await raw._source(database).pool()  # type: ignore[union-attr]
    released: list[object] = []
    release = asyncpg.Pool.release

    async def counted(self: asyncpg.Pool, connection: object, **options: Any) -> None:
        released.append(connection)
        await release(self, connection, **options)

    monkeypatch.setattr(asyncpg.Pool, "release", counted)
    readers = 3 * pool.get_max_size()
    found = await asyncio.wait_for(
        asyncio.gather(*(_backend_pid(database, sleep=0.05) for _ in range(readers))), 20
    )
    assert len(found) == readers
    assert len(set(found)) <= pool.get_max_size()
    assert released == []
    assert not raw._source(database)._handoff  # type: ignore[union-attr]


async def test_a_waiting_reader_cancelled_passes_its_connection_on(database: Database) -> None:
    """A reader cancelled while it waits for another's connection leaves none behind: every
    connection still serves the readers after it."""
    _postgres_only(database)
    await _backend_pid(database)
    pool = await raw._source(database).pool()  # type: ignore[union-attr]
    size = pool.get_max_size()
    holding = [asyncio.ensure_future(_backend_pid(database, sleep=0.3)) for _ in range(size)]
    await asyncio.sleep(0.1)  # every connection out
    waiting = [asyncio.ensure_future(_backend_pid(database)) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert len(raw._source(database)._handoff) == 3  # type: ignore[union-attr]
    waiting[0].cancel()
    found = await asyncio.wait_for(asyncio.gather(*holding, *waiting[1:]), 10)
    assert len(found) == size + 2
    with pytest.raises(asyncio.CancelledError):
        await waiting[0]
    after = await asyncio.wait_for(
        asyncio.gather(*(_backend_pid(database, sleep=0.05) for _ in range(2 * size))), 10
    )
    assert len(set(after)) <= size
    await asyncio.wait_for(database.dispose(), 10)  # every connection back, the pool closed


async def test_a_postgres_connection_closed_while_kept_aside_is_not_read_on(
    database: Database,
) -> None:
    """A connection kept aside that the server ended in between (a restart, a terminated
    backend, an idle timeout) goes back to the pool, which replaces it: the next reads run on
    a live connection, as after an acquire from the pool."""
    _postgres_only(database)
    first = await _backend_pid(database)
    async with database.engine.connect() as other:
        await other.exec_driver_sql(f"SELECT pg_terminate_backend({first})")
    kept = raw._source(database)._idle  # type: ignore[union-attr]
    for _ in range(100):  # until the client sees the socket close (asyncpg detaches it)
        try:
            if all(held.is_closed() for held in kept):
                break
        except asyncpg.InterfaceError:
            break
        await asyncio.sleep(0.02)
    assert await _backend_pid(database) != first


_PLAN_MODE = select(func.current_setting("plan_cache_mode"))


async def test_postgres_raw_reads_plan_generically_but_where_marked(database: Database) -> None:
    """The raw pool's sessions let PostgreSQL keep generic plans (reads by key: planning an
    `= ANY($1)` each time was most of their cost); a statement marked CUSTOM_PLAN runs with a
    plan for its own values, and the connection is kept with generic plans allowed again.
    The engine's connections (the standard executor) keep custom plans."""
    _postgres_only(database)
    marked = _PLAN_MODE.execution_options(**{raw.CUSTOM_PLAN: True})
    async with raw_reads(database) as reads:
        assert (await reads.all(_PLAN_MODE, {}))[0][0] == "auto"
        assert (await reads.all(marked, {}))[0][0] == "force_custom_plan"
        assert (await reads.all(marked, {}))[0][0] == "force_custom_plan"
        assert (await reads.all(_PLAN_MODE, {}))[0][0] == "auto"
        assert (await reads.all(marked, {}))[0][0] == "force_custom_plan"
    async with raw_reads(database) as reads:  # the same connection, kept aside
        assert (await reads.run("SELECT current_setting('plan_cache_mode')", []))[0][0] == "auto"
    async with database.engine.connect() as connection:
        found = await connection.exec_driver_sql("SELECT current_setting('plan_cache_mode')")
        assert found.scalar_one() == "force_custom_plan"


async def test_a_postgres_read_by_one_key_binds_the_key_itself(demo_database: Database) -> None:
    """OneKey's read of one run (a point read's) finds the row the statement's own read finds,
    with the key bound as itself to an equality: an `= ANY` of an array of one kept PostgreSQL
    planning it anew at every read on a table of thousands of runs (a small test table gets a
    generic plan either way, so the statement is checked here, not its plans)."""
    _postgres_only(demo_database)
    statement = select(RUNS.c.id, RUNS.c.status).where(
        RUNS.c.id.in_(bindparam("ids", expanding=True)), RUNS.c.org_id == bindparam("org")
    )
    one = raw.OneKey.of(statement, demo_database.engine.dialect)
    assert one is not None
    run_id, org_id = (await _by_sqlalchemy(demo_database, select(RUNS.c.id, RUNS.c.org_id)))[0]
    arguments = one.arguments({"org": org_id, "ids": run_id})
    assert arguments == [run_id, org_id]
    assert "ANY" not in one.sql
    async with raw_reads(demo_database) as reads:
        rows = await reads.run(one.sql, arguments)
        expected = await reads.all(statement, {"org": org_id, "ids": [run_id]})
    assert [tuple(row) for row in rows] == [tuple(row) for row in expected]
    assert rows[0][0] == run_id


async def _failing_after_custom_plans(database: Database) -> int:
    async with raw_reads(database) as reads:
        marked = select(func.pg_backend_pid()).execution_options(**{raw.CUSTOM_PLAN: True})
        pid = (await reads.all(marked, {}))[0][0]
        raise RuntimeError(pid)


async def _pid_and_mode(database: Database) -> tuple[int, str]:
    async with raw_reads(database) as reads:
        sql = "SELECT pg_backend_pid(), current_setting('plan_cache_mode'), pg_sleep(0.1)"
        row = (await reads.run(sql, []))[0]
        return row[0], row[1]


async def test_a_postgres_read_that_fails_leaves_no_custom_plans_behind(
    database: Database,
) -> None:
    """A request whose reads fail after custom plans were set hands its connection back to
    the pool, whose reset allows generic plans again."""
    _postgres_only(database)
    with pytest.raises(RuntimeError) as failed:
        await _failing_after_custom_plans(database)
    pid = failed.value.args[0]
    pool = await raw._source(database).pool()  # type: ignore[union-attr]
    found = dict(
        await asyncio.gather(*(_pid_and_mode(database) for _ in range(pool.get_max_size())))
    )
    assert found[pid] == "auto"
    assert set(found.values()) == {"auto"}
