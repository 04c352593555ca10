"""Reads shared between a run's subscribers never serve a result older than the caller needs."""

import asyncio

import pytest

from runql.agents import catalog
from runql.agents.registry import default_registry
from runql.bus.shared import SharedReads
from runql.enums import RunEventType
from runql.storage.database import Database
from runql.storage.events import append_event
from runql.storage.tables import DEFAULT_ORG_ID, AgentRow, RunRow
from tests.lifecycle.conftest import new_run


@pytest.fixture
async def echo(database: Database) -> AgentRow:
    return await catalog.create_agent(
        database,
        default_registry(),
        DEFAULT_ORG_ID,
        name="Echo",
        kind="echo",
        config={"delay_ms": 0},
    )


async def _append(database: Database, run_id: str, count: int) -> None:
    for index in range(count):
        async with database.write() as session:
            await append_event(session, run_id, RunEventType.MESSAGE_ADDED, {"index": index})


async def test_a_remembered_read_is_served_only_when_it_reaches_far_enough(
    database: Database, echo: AgentRow
) -> None:
    run = await new_run(database, echo)
    shared = SharedReads(database)
    assert await shared.events_after(run.id, 1, None) == []  # remembered: reaches 1
    await _append(database, run.id, 2)
    assert await shared.events_after(run.id, 1, 1) == []  # what was asked for, no more
    found = await shared.events_after(run.id, 1, 3)  # a notice said 3 exists: read again
    assert [event.seq for event in found] == [2, 3]
    assert [e.seq for e in await shared.events_after(run.id, 1, 2)] == [2, 3]  # remembered


async def test_concurrent_readers_share_one_query(database: Database, echo: AgentRow) -> None:
    from runql.storage.database import counting_statements

    run = await new_run(database, echo)
    await _append(database, run.id, 3)
    shared = SharedReads(database)
    async with counting_statements() as count:
        results = await asyncio.gather(*(shared.events_after(run.id, 0, 4) for _ in range(50)))
    assert all([e.seq for e in result] == [1, 2, 3, 4] for result in results)
    assert count.statements == 1


async def test_readers_after_the_same_changes_share_one_read(database: Database) -> None:
    shared = SharedReads(database)
    reads = 0

    async def read() -> list[RunRow]:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        return []

    same = ("org", "filter", (("run_a", 3),))
    await asyncio.gather(*(shared.after_changes(same, read) for _ in range(50)))
    assert reads == 1
    await shared.after_changes(("org", "filter", (("run_a", 4),)), read)  # a later change
    await shared.after_changes(("org", "another filter", (("run_a", 3),)), read)
    assert reads == 3


async def test_a_fresh_read_starts_after_it_is_asked_for_and_is_shared(
    database: Database, echo: AgentRow
) -> None:
    from runql.storage.database import counting_statements

    run = await new_run(database, echo)
    shared = SharedReads(database)
    first = asyncio.create_task(shared.run_now(DEFAULT_ORG_ID, run.id))
    await asyncio.sleep(0)  # the first read is under way
    async with database.write() as session:
        await append_event(session, run.id, RunEventType.MESSAGE_ADDED, {"index": 0})
    async with counting_statements() as count:
        later = await asyncio.gather(*(shared.run_now(DEFAULT_ORG_ID, run.id) for _ in range(50)))
    await first
    assert {row.last_event_seq for row in later if row is not None} == {2}
    assert count.statements <= 2  # at most two reads for all fifty, whatever the timing
    assert await shared.run_now("org_other", run.id) is None


async def test_a_reader_that_leaves_does_not_take_the_read_from_those_waiting(
    database: Database,
) -> None:
    shared = SharedReads(database)
    started, release = asyncio.Event(), asyncio.Event()

    async def read() -> list[RunRow]:
        started.set()
        await release.wait()
        return []

    key = ("org", "filter", (("run_a", 3),))
    first = asyncio.create_task(shared.after_changes(key, read))
    await started.wait()
    second = asyncio.create_task(shared.after_changes(key, read))
    await asyncio.sleep(0)
    first.cancel()  # its subscriber's socket closed in the middle of the read
    await asyncio.sleep(0)
    release.set()
    async with asyncio.timeout(5):
        assert await second == []
