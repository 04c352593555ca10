"""The SQLite log tail (runql.bus.feeders.SQLiteTail) and this process's own commits: a row the
tail reads between this process's COMMIT and its announcement is announced after it, so the
hub's notice of it carries the event; rows of other processes read meanwhile are announced
too, once the commit has been."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from runql.bus.feeders import SQLiteTail, feed_from_commits
from runql.bus.hub import Hub, Notice
from runql.enums import RunEventType
from runql.storage.database import Database, sqlite_file
from runql.storage.events import Logged, RunEvent, append_event, last_logged_id, logged_after
from runql.storage.tables import RunRow


@dataclass
class Tailed:
    """A SQLite tail on the demo database, and what its hub announced."""

    database: Database
    hub: Hub
    tail: SQLiteTail
    heard: list[Notice] = field(default_factory=list)


@pytest.fixture
async def tailed(demo_database: Database) -> AsyncIterator[Tailed]:
    path = sqlite_file(demo_database.engine.url.render_as_string(hide_password=False))
    if path is None:
        pytest.skip("the tail reads a SQLite file")
    hub = Hub()
    found = Tailed(demo_database, hub, SQLiteTail(hub, path, demo_database))
    hub.observe(found.heard.append)
    try:
        yield found
    finally:
        await found.tail.stop()


async def test_a_row_read_while_its_commit_announces_is_announced_with_its_event(
    tailed: Tailed,
) -> None:
    database, hub, tail, heard = tailed.database, tailed.hub, tailed.tail, tailed.heard
    async with database.read() as session:
        run = (await session.execute(select(RunRow).limit(1))).scalars().one()
    connection = tail._open()
    after = last_logged_id(connection)
    elsewhere = Logged(after + 1000, run.org_id, "run_of_another_process", 1, None)

    def read_meanwhile(_event: RunEvent) -> None:
        """The tail's read, between the COMMIT and the commit listener's announcement (a
        listener before feed_from_commits' runs there), and one of another process's rows."""
        tail._announce([*logged_after(connection, after), elsewhere])

    database.on_commit(read_meanwhile)
    feed_from_commits(hub, database)
    async with database.write() as session:
        event = await append_event(
            session, run.id, RunEventType.MESSAGE_DELTA, {"text": "hi", "offset": 0}
        )
    await asyncio.sleep(0)  # the tail's announcement, called soon after the commit's
    assert [(notice.run_id, notice.seq) for notice in heard] == [
        (run.id, event.seq),
        ("run_of_another_process", 1),
    ]
    assert heard[0].event == event  # announced by the commit listener first, with its event


async def test_without_a_commit_under_way_the_tail_announces_at_once(tailed: Tailed) -> None:
    tailed.tail._announce([Logged(1, "org_1", "run_1", 3, None)])
    assert tailed.heard == [Notice("org_1", "run_1", 3)]
