"""createRun's service: what it writes, what it refuses (writing nothing), idempotency."""

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select
from sqlmodel import col

from runql.agents import catalog
from runql.agents.protocol import Attachment, Part
from runql.enums import AttachmentType, ContentPartType, RunStatus
from runql.errors import BadUserInput, Conflict, NotFound, RunqlError
from runql.lifecycle.runs import RunRequest, cancel_run, create_run
from runql.lifecycle.validation import Content
from runql.storage.database import Database
from runql.storage.events import NOTIFY_CHANNEL, Announcement
from runql.storage.tables import DEFAULT_ORG_ID, AgentRow, MessageGroupRow, RunRow
from runql.storage.types import utcnow
from tests.lifecycle.conftest import MAX_BYTES, event_log, new_run, reload, row_counts

UNKNOWN_AGENT = "agent_AAAAAAAAAAAAAAAAAAAA"
UNKNOWN_THREAD = "thread_AAAAAAAAAAAAAAAAAAAA"


async def test_a_run_starts_pending_with_its_thread_and_trigger_message(
    database: Database, echo: AgentRow
) -> None:
    run = await new_run(
        database,
        echo,
        language="en-GB",
        country="us",
        timezone="America/New_York",
        metadata={"k": "v"},
        raw_inputs={"text": "Hello"},
    )
    assert run.status == RunStatus.PENDING
    assert (run.language, run.country, run.timezone) == ("en-GB", "US", "America/New_York")
    assert run.started_at is None
    assert run.completed_at is None
    async with database.read() as session:
        trigger = await session.get(MessageGroupRow, run.trigger_message_group_id)
    assert trigger is not None
    assert trigger.thread_id == run.thread_id
    assert trigger.type == "user_message"
    assert await event_log(database, run.id) == [(1, "status_changed", {"status": "pending"})]


async def test_continuing_a_thread_links_the_new_message_to_the_last_one(
    database: Database, echo: AgentRow
) -> None:
    first = await new_run(database, echo)
    second = await new_run(database, echo, thread_id=first.thread_id)
    assert second.thread_id == first.thread_id
    async with database.read() as session:
        trigger = await session.get(MessageGroupRow, second.trigger_message_group_id)
    assert trigger is not None
    assert trigger.parent_message_group_id == first.trigger_message_group_id


# Fields by the lifecycle's own names; GraphQL and REST give theirs (rest/test_field_names.py).
REFUSALS: list[tuple[str, dict[str, Any], type[RunqlError], str]] = [
    ("unknown agent", {"agent_id": UNKNOWN_AGENT}, NotFound, "agent_id"),
    ("malformed agent id", {"agent_id": "agent-1"}, BadUserInput, "agent_id"),
    ("unknown thread", {"thread_id": UNKNOWN_THREAD}, NotFound, "thread_id"),
    ("empty content", {"content": Content(())}, BadUserInput, "content"),
    ("blank content", {"content": Content.text("   ")}, BadUserInput, "content"),
    (
        "content over the cap",
        {"content": Content.text("x" * (MAX_BYTES + 1))},
        BadUserInput,
        "content",
    ),
    (
        "attachment without file or url",
        {"content": Content((Part("hi"),), (Attachment(AttachmentType.FILE),))},
        BadUserInput,
        "content.attachments[0]",
    ),
    (
        "attachment with a bad url",
        {"content": Content((Part("hi"),), (Attachment(AttachmentType.LINK, url="ftp://x"),))},
        BadUserInput,
        "content.attachments[0].url",
    ),
    ("invalid language", {"language": "english!"}, BadUserInput, "language"),
    ("language with underscore", {"language": "en_US"}, BadUserInput, "language"),
    ("invalid country", {"country": "XX"}, BadUserInput, "country"),
    ("three-letter country", {"country": "USA"}, BadUserInput, "country"),
    ("invalid timezone", {"timezone": "Mars/Olympus"}, BadUserInput, "timezone"),
    ("metadata not an object", {"metadata": ["a"]}, BadUserInput, "metadata"),
    ("empty idempotency key", {"idempotency_key": ""}, BadUserInput, "idempotency_key"),
]


@pytest.mark.parametrize(
    ("fields", "error", "field"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
async def test_refused_input_names_its_field_and_writes_nothing(
    database: Database,
    echo: AgentRow,
    fields: dict[str, Any],
    error: type[RunqlError],
    field: str,
) -> None:
    before = await row_counts(database)
    request: dict[str, Any] = {"agent_id": echo.id, "content": Content.text("Hello"), **fields}
    with pytest.raises(error) as raised:
        await create_run(
            database, DEFAULT_ORG_ID, RunRequest(**request), max_content_bytes=MAX_BYTES
        )
    assert raised.value.field == field
    assert await row_counts(database) == before


async def test_a_thread_of_another_agent_is_a_conflict(
    database: Database,
    echo: AgentRow,
) -> None:
    other = await catalog.create_agent(
        database, _registry(), DEFAULT_ORG_ID, name="Other", kind="echo", config={}
    )
    run = await new_run(database, other)
    before = await row_counts(database)
    with pytest.raises(Conflict) as raised:
        await new_run(database, echo, thread_id=run.thread_id)
    assert raised.value.field == "thread_id"
    assert await row_counts(database) == before


async def test_an_archived_agent_takes_no_new_runs(database: Database, echo: AgentRow) -> None:
    await catalog.archive_agent(database, DEFAULT_ORG_ID, echo.id)
    before = await row_counts(database)
    with pytest.raises(Conflict) as raised:
        await new_run(database, echo)
    assert raised.value.field == "agent_id"
    assert await row_counts(database) == before


def _registry() -> Any:
    from runql.agents.registry import default_registry

    return default_registry()


async def test_the_same_key_and_input_return_the_original_run(
    database: Database, echo: AgentRow
) -> None:
    first = await new_run(database, echo, idempotency_key="order-7")
    counts = await row_counts(database)
    again = await new_run(database, echo, idempotency_key="order-7")
    assert again.id == first.id
    assert await row_counts(database) == counts


async def test_the_same_key_with_other_input_is_a_conflict(
    database: Database, echo: AgentRow
) -> None:
    await new_run(database, echo, "first text", idempotency_key="order-8")
    counts = await row_counts(database)
    with pytest.raises(Conflict) as raised:
        await new_run(database, echo, "other text", idempotency_key="order-8")
    assert raised.value.field == "idempotency_key"
    assert await row_counts(database) == counts


async def test_fifty_concurrent_calls_with_one_key_make_one_run(
    database: Database, echo: AgentRow
) -> None:
    runs = await asyncio.gather(
        *(new_run(database, echo, idempotency_key="burst") for _ in range(50))
    )
    assert len({run.id for run in runs}) == 1
    assert (await row_counts(database))["runs"] == 1


async def test_structured_content_keeps_parts_and_attachments_in_order(
    database: Database, echo: AgentRow
) -> None:
    content = Content(
        (Part("one"), Part("**two**", ContentPartType.MARKDOWN)),
        (
            Attachment(
                AttachmentType.IMAGE,
                file_id="file_AAAAAAAAAAAAAAAAAAAA",
                url="https://files.example.com/a.png",
                caption="a chart",
            ),
        ),
    )
    run = await create_run(
        database, DEFAULT_ORG_ID, RunRequest(echo.id, content), max_content_bytes=MAX_BYTES
    )
    assert (await row_counts(database))["content_parts"] == 2
    assert (await row_counts(database))["attachments"] == 1
    assert run.status == RunStatus.PENDING


async def test_cancelling_a_pending_run_is_immediate_and_idempotent(
    database: Database, echo: AgentRow
) -> None:
    run = await new_run(database, echo)
    assert (await cancel_run(database, DEFAULT_ORG_ID, run.id)).status == RunStatus.CANCELLED
    assert (await cancel_run(database, DEFAULT_ORG_ID, run.id)).status == RunStatus.CANCELLED
    assert [kind for _, kind, _ in await event_log(database, run.id)] == ["status_changed"] * 2
    assert (await reload(database, run.id)).completed_at is not None


async def test_cancelling_a_finished_run_is_a_conflict(database: Database, echo: AgentRow) -> None:
    from runql.lifecycle.transitions import transition

    run = await new_run(database, echo)
    for status in (RunStatus.RUNNING, RunStatus.SUCCESS):
        async with database.write() as session:
            await transition(session, run.id, status)
    with pytest.raises(Conflict):
        await cancel_run(database, DEFAULT_ORG_ID, run.id)
    stored: RunRow = await reload(database, run.id)
    assert stored.status == RunStatus.SUCCESS


async def test_a_batch_answers_each_create_as_alone_and_keeps_thread_order(
    database: Database, echo: AgentRow
) -> None:
    """Creates submitted together share a batch (on a SQLite file, one transaction on the
    writer thread): refused ones write nothing and the others go on; messages sent to one
    thread at once are chained in the order they came; each run's first event is announced
    once, after its commit."""
    heard: list[str] = []
    database.on_commit(lambda event: heard.append(event.run_id))
    first = await new_run(database, echo, "first")
    counts = await row_counts(database)
    archived = await catalog.create_agent(
        database, _registry(), DEFAULT_ORG_ID, name="Old", kind="echo", config={}
    )
    await catalog.archive_agent(database, DEFAULT_ORG_ID, archived.id)
    heard.clear()
    outcomes = await asyncio.gather(
        *(new_run(database, echo, f"follow-up {n}", thread_id=first.thread_id) for n in range(5)),
        new_run(database, echo, "fresh"),
        new_run(database, archived, "to an archived agent"),
        create_run(
            database,
            DEFAULT_ORG_ID,
            RunRequest(UNKNOWN_AGENT, Content.text("to nobody")),
            max_content_bytes=MAX_BYTES,
        ),
        new_run(database, echo, "to a missing thread", thread_id=UNKNOWN_THREAD),
        return_exceptions=True,
    )
    *follow_ups, fresh, to_archived, to_nobody, to_missing = outcomes
    assert isinstance(to_archived, Conflict)
    assert to_archived.field == "agent_id"
    assert isinstance(to_nobody, NotFound)
    assert to_nobody.field == "agent_id"
    assert isinstance(to_missing, NotFound)
    assert to_missing.field == "thread_id"
    made = [run for run in [*follow_ups, fresh] if isinstance(run, RunRow)]
    assert len(made) == 6
    after = await row_counts(database)
    assert after["runs"] == counts["runs"] + 6
    assert after["threads"] == counts["threads"] + 1
    assert sorted(heard) == sorted(run.id for run in made)
    parent = first.trigger_message_group_id
    async with database.read() as session:
        for run in follow_ups:
            assert isinstance(run, RunRow)
            group = await session.get(MessageGroupRow, run.trigger_message_group_id)
            assert group is not None
            assert group.parent_message_group_id == parent
            parent = group.id
    for run in made:
        assert await event_log(database, run.id) == [(1, "status_changed", {"status": "pending"})]


async def test_other_processes_hear_each_new_run_once_after_its_commit(
    database: Database, echo: AgentRow
) -> None:
    """On PostgreSQL a batch's runs are announced on NOTIFY (in the statement that inserts
    them, when the batch is written in autocommit): a listener on another connection hears
    each created run's first event once, carried whole, and nothing of a refused create."""
    if database.is_sqlite:
        pytest.skip("SQLite's other processes read the log (bus.feeders.SQLiteTail)")
    url = database.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    listener = await asyncpg.connect(url)
    heard: list[Announcement] = []
    await listener.add_listener(
        NOTIFY_CHANNEL, lambda *args: heard.append(Announcement.parse(args[-1]))
    )
    try:
        outcomes = await asyncio.gather(
            *(new_run(database, echo, f"message {n}") for n in range(8)),
            create_run(
                database,
                DEFAULT_ORG_ID,
                RunRequest(UNKNOWN_AGENT, Content.text("to nobody")),
                max_content_bytes=MAX_BYTES,
            ),
            return_exceptions=True,
        )
        for _ in range(100):
            if len(heard) >= 8:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # time for a duplicate to arrive, were there one
    finally:
        await listener.close()
    made = [run for run in outcomes if isinstance(run, RunRow)]
    assert len(made) == 8
    assert sorted(announcement.run_id for announcement in heard) == sorted(r.id for r in made)
    for announcement in heard:
        assert announcement.seq == 1
        assert announcement.status == "pending"
        assert announcement.event is not None
        assert announcement.event.payload == {"status": "pending"}


async def test_two_processes_continuing_one_thread_chain_its_messages(
    database: Database, echo: AgentRow
) -> None:
    """Two gateways (two engines on one database) add to one thread at once, round after
    round: each new message's parent is the one before it, never a message another one
    already follows (the thread is read under a lock on PostgreSQL, BEGIN IMMEDIATE on
    SQLite)."""
    other = Database.from_url(database.engine.url.render_as_string(hide_password=False))
    try:
        first = await new_run(database, echo)
        for _ in range(15):
            await asyncio.gather(
                new_run(database, echo, thread_id=first.thread_id),
                new_run(other, echo, thread_id=first.thread_id),
            )
        async with database.read() as session:
            groups = (
                await session.execute(
                    select(
                        col(MessageGroupRow.id), col(MessageGroupRow.parent_message_group_id)
                    ).where(
                        col(MessageGroupRow.thread_id) == first.thread_id,
                        col(MessageGroupRow.type) == "user_message",
                    )
                )
            ).all()
    finally:
        await other.dispose()
    parents = [parent for _, parent in groups]
    assert len(groups) == 31
    assert parents.count(None) == 1
    assert len(set(parents)) == len(parents), "two messages follow the same one"


async def test_a_message_from_a_clock_behind_still_follows_the_last_one(
    database: Database, echo: AgentRow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway whose clock is an hour behind continues a thread: its message is still made
    after its parent, so the next message (any clock) follows it rather than its parent."""
    first = await new_run(database, echo)
    behind = utcnow() - timedelta(hours=1)
    with monkeypatch.context() as patched:
        patched.setattr("runql.lifecycle.runs.utcnow", lambda: behind)
        second = await new_run(database, echo, thread_id=first.thread_id)
    third = await new_run(database, echo, thread_id=first.thread_id)
    async with database.read() as session:
        groups = {
            group_id: (parent, created_at)
            for group_id, parent, created_at in (
                await session.execute(
                    select(
                        col(MessageGroupRow.id),
                        col(MessageGroupRow.parent_message_group_id),
                        col(MessageGroupRow.created_at),
                    ).where(col(MessageGroupRow.thread_id) == first.thread_id)
                )
            ).all()
        }
    parent, made = groups[second.trigger_message_group_id]
    assert parent == first.trigger_message_group_id
    assert made > groups[first.trigger_message_group_id][1]
    assert groups[third.trigger_message_group_id][0] == second.trigger_message_group_id
