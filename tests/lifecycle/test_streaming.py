"""Runs of streaming agents: the reply is written as it streams, exactly, and a run that is
cancelled keeps what it streamed."""

import asyncio
import contextlib
import functools
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, select, update
from sqlmodel import col

from runql.agents import catalog
from runql.agents.echo import EchoKind
from runql.agents.protocol import (
    AgentError,
    AgentRequest,
    AttachedValue,
    Attachment,
    Cost,
    MessageStarted,
    Part,
    ReplyMessage,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolResult,
)
from runql.agents.registry import AgentRegistry
from runql.enums import AttachmentType, ContentPartType, RunEventType, RunStatus
from runql.errors import Conflict
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.lifecycle.runs import DEFAULT_JSON_CAPS, cancel_run
from runql.lifecycle.streaming import FLUSH_SECONDS, FlushBatcher, StreamedRun
from runql.lifecycle.transitions import transition
from runql.storage.database import Database
from runql.storage.events import (
    MAX_CARRIED,
    NOTIFY_CHANNEL,
    Announcement,
    RunEvent,
    append_event,
)
from runql.storage.tables import (
    DEFAULT_ORG_ID,
    ActorRow,
    AgentRow,
    AttachedItemRow,
    AttachmentRow,
    MessageContentRow,
    MessageGroupRow,
    RunErrorRow,
    RunRow,
)
from tests.agents.streamed import (
    Script,
    ScriptedStreamKind,
    deltas,
    group_status,
    stored_messages,
)
from tests.conftest import GraphQLClient
from tests.lifecycle.conftest import event_log, new_run, reload, statuses

FAST = ExecutorConfig(
    concurrency=2,
    lease_seconds=5,
    poll_seconds=0.05,
    agent_timeout_seconds=5,
    shutdown_grace_seconds=0.2,
)


async def _agent(database: Database, script: Script) -> tuple[AgentRegistry, AgentRow]:
    registry = AgentRegistry([EchoKind(), ScriptedStreamKind(script)])
    agent = await catalog.create_agent(
        database, registry, DEFAULT_ORG_ID, name="Streamed", kind="streamed", config={}
    )
    return registry, agent


async def _until(predicate: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def test_the_stored_text_is_the_concatenation_of_the_deltas(database: Database) -> None:
    pieces = ["Hel", "lo, ", "wörld", " 🌍", "!"]

    async def script(request: AgentRequest) -> AsyncIterator[StreamEvent]:
        for piece in pieces:
            yield TextDelta(piece)
            await asyncio.sleep(0.03)
        yield Cost(1.5, "credits")

    registry, agent = await _agent(database, script)
    run = await new_run(database, agent)
    assert await Executor(database, registry, FAST).run_once()
    done = await reload(database, run.id)
    assert done.status == RunStatus.SUCCESS
    assert (done.cost_amount, done.cost_unit) == (1.5, "credits")
    assert done.message_group_id is not None
    [(message_id, kind, text)] = await stored_messages(database, done.message_group_id)
    assert (kind, text) == ("content", "".join(pieces))
    sent = await deltas(database, run.id)
    assert "".join(d["text"] for d in sent) == text
    assert {d["message_id"] for d in sent} == {message_id}
    assert {d["message_group_id"] for d in sent} == {done.message_group_id}
    offsets = [d["offset"] for d in sent]
    assert offsets == [sum(len(d["text"]) for d in sent[:i]) for i in range(len(sent))]
    assert await group_status(database, done.message_group_id) == "completed"
    log = await event_log(database, run.id)
    assert [seq for seq, _, _ in log] == list(range(1, len(log) + 1))
    kinds = [kind for _, kind, _ in log]
    assert kinds[:3] == ["status_changed", "status_changed", "message_added"]
    assert set(kinds[3:-1]) == {"message_delta"}
    assert kinds[-1] == "status_changed"
    assert await statuses(database, run.id) == ["pending", "running", "success"]


async def test_the_last_deltas_are_flushed_before_the_run_s_end_is_written(
    database: Database,
) -> None:
    """Deltas still pending when the stream ends are flushed as the others are (the flush
    batcher's transaction, delivered at its commit), not held for the run's end, which is
    written after them with other runs' outcomes."""

    async def script(request: AgentRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("first")  # all three read before the run's task flushes: pending
        yield TextDelta(" second")
        yield TextDelta(" third")

    registry, agent = await _agent(database, script)
    run = await new_run(database, agent)
    executor = Executor(database, registry, FAST)
    assert await executor.run_once()
    done = await reload(database, run.id)
    assert done.status == RunStatus.SUCCESS
    assert done.message_group_id is not None
    assert [text for _, _, text in await stored_messages(database, done.message_group_id)] == [
        "first second third"
    ]
    assert executor.batcher.transactions == 1  # the deltas', before the end's
    log = await event_log(database, run.id)
    assert [kind for _, kind, _ in log][-2:] == ["message_delta", "status_changed"]


async def test_a_whole_message_in_a_stream_keeps_its_parts_and_attachments(
    database: Database,
) -> None:
    """A message that is not streamed (a webhook's JSON answer) is stored as it came: one
    message with all its parts and attachments, between the streamed ones."""
    link = Attachment(AttachmentType.LINK, url="https://example.com/a", caption="a")
    whole = ReplyMessage((Part("first"), Part("**second**", ContentPartType.MARKDOWN)), (link,))

    async def script(request: AgentRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("before")
        yield whole
        yield TextDelta("after")

    registry, agent = await _agent(database, script)
    run = await new_run(database, agent)
    assert await Executor(database, registry, FAST).run_once()
    done = await reload(database, run.id)
    assert done.status == RunStatus.SUCCESS
    assert done.message_group_id is not None
    stored = await stored_messages(database, done.message_group_id)
    assert [(kind, text) for _, kind, text in stored] == [
        ("content", "before"),
        ("content", "first"),
        ("content", "**second**"),
        ("content", "after"),
    ]
    assert len({message_id for message_id, _, _ in stored}) == 3  # the whole one has two parts
    whole_id = stored[1][0]
    async with database.read() as session:
        attachments = (
            await session.execute(
                select(AttachmentRow)
                .join(
                    MessageContentRow,
                    col(MessageContentRow.id) == col(AttachmentRow.content_id),
                )
                .where(col(MessageContentRow.message_item_id) == whole_id)
            )
        ).scalars()
        assert [(a.type, a.url, a.caption) for a in attachments] == [("link", link.url, "a")]


async def test_deltas_are_coalesced_to_one_flush_per_interval(database: Database) -> None:
    """200 deltas in half a second make about ten MESSAGE_DELTA events, not 200."""
    streamed: list[float] = []

    async def script(request: AgentRequest) -> AsyncIterator[StreamEvent]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index in range(200):
            await asyncio.sleep(max(0.0, start + index * 0.0025 - loop.time()))
            yield TextDelta(f"{index} ")
        streamed.append(loop.time() - start)

    registry, agent = await _agent(database, script)
    run = await new_run(database, agent)
    assert await Executor(database, registry, FAST).run_once()
    sent = await deltas(database, run.id)
    assert "".join(d["text"] for d in sent) == "".join(f"{index} " for index in range(200))
    # one flush at the first delta, one per interval after it, and the last one at the end
    assert len(sent) <= streamed[0] / FLUSH_SECONDS + 2, (len(sent), streamed)
    if streamed[0] < 0.55:  # unless the machine is too loaded to stream in time
        assert len(sent) <= 12, (len(sent), streamed)


async def test_messages_tool_calls_items_in_order(database: Database) -> None:
    async def script(request: AgentRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("Let me look.")
        yield ToolCall("search", {"q": "runql"}, "call_1")
        yield ToolResult("search", ["a", "b"], "call_1")
        yield MessageStarted(ContentPartType.MARKDOWN)
        yield TextDelta("**Found** ")
        yield AttachedValue("sources", 2)
        yield TextDelta("two.")

    registry, agent = await _agent(database, script)
    run = await new_run(database, agent)
    assert await Executor(database, registry, FAST).run_once()
    done = await reload(database, run.id)
    assert done.status == RunStatus.SUCCESS
    assert done.message_group_id is not None
    messages = await stored_messages(database, done.message_group_id)
    assert [(kind, text) for _, kind, text in messages[:1]] == [("content", "Let me look.")]
    assert messages[1][1] == "tool_call"
    assert json.loads(messages[1][2]) == {
        "name": "search",
        "arguments": {"q": "runql"},
        "call_id": "call_1",
    }
    assert messages[2][1] == "tool_result"
    assert json.loads(messages[2][2]) == {
        "name": "search",
        "result": ["a", "b"],
        "call_id": "call_1",
    }
    assert (messages[3][1], messages[3][2]) == ("content", "**Found** two.")
    async with database.read() as session:
        items = (
            await session.execute(
                AttachedItemRow.__table__.select().where(  # type: ignore[attr-defined]
                    AttachedItemRow.__table__.c.run_id == run.id  # type: ignore[attr-defined]
                )
            )
        ).all()
    assert [(item.key, item.value, item.message_group_id) for item in items] == [
        ("sources", 2, done.message_group_id)
    ]


MID_STREAM = """query ($id: ID!) { run(id: $id) { status messageGroup { id status
  messages { id status content { parts { text } } } } } }"""


async def test_a_query_mid_stream_shows_the_text_so_far(
    database: Database, gql_empty: GraphQLClient
) -> None:
    release = asyncio.Event()

    async def script(request: AgentRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("Thinking")
        yield TextDelta(" hard")
        await release.wait()
        yield TextDelta(", done.")

    registry, agent = await _agent(database, script)
    run = await new_run(database, agent)
    executor = Executor(database, registry, FAST)
    await executor.start()
    try:
        await _until(lambda: _text_is(database, run.id, "Thinking hard"))
        body = await gql_empty(MID_STREAM, {"id": run.id})
        assert "errors" not in body, body
        shown = body["data"]["run"]
        assert shown["status"] == "RUNNING"
        assert shown["messageGroup"]["status"] == "IN_PROGRESS"
        [message] = shown["messageGroup"]["messages"]
        assert message["status"] == "ACTIVE"
        assert message["content"]["parts"] == [{"text": "Thinking hard"}]
        release.set()
        await _until(lambda: _status_is(database, run.id, RunStatus.SUCCESS))
    finally:
        await executor.stop()
    body = await gql_empty(MID_STREAM, {"id": run.id})
    assert body["data"]["run"]["messageGroup"]["status"] == "COMPLETED"
    [message] = body["data"]["run"]["messageGroup"]["messages"]
    assert message["content"]["parts"] == [{"text": "Thinking hard, done."}]


async def _text_is(database: Database, run_id: str, wanted: str) -> bool:
    run = await reload(database, run_id)
    if run.message_group_id is None:
        return False
    messages = await stored_messages(database, run.message_group_id)
    return [text for _, _, text in messages] == [wanted]


async def _status_is(database: Database, run_id: str, *wanted: RunStatus) -> bool:
    return (await reload(database, run_id)).status in wanted


async def test_cancelling_mid_stream_closes_the_stream_and_keeps_its_text(
    database: Database,
) -> None:
    closed = asyncio.Event()

    async def script(request: AgentRequest) -> AsyncIterator[StreamEvent]:
        try:
            for index in range(10_000):
                yield TextDelta(f"w{index} ")
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    registry, agent = await _agent(database, script)
    run = await new_run(database, agent)
    executor = Executor(database, registry, FAST)
    await executor.start()
    loop = asyncio.get_running_loop()
    try:
        await _until(lambda: _has_deltas(database, run.id, 3))
        assert (await cancel_run(database, DEFAULT_ORG_ID, run.id)).status == RunStatus.RUNNING
        asked = loop.time()
        await _until(lambda: _status_is(database, run.id, RunStatus.CANCELLED), seconds=2)
        took = loop.time() - asked
    finally:
        await executor.stop()
    assert closed.is_set()
    assert took < 1.0, took
    done = await reload(database, run.id)
    assert done.message_group_id is not None
    [(_, _, text)] = await stored_messages(database, done.message_group_id)
    assert text == "".join(d["text"] for d in await deltas(database, run.id))
    assert text.startswith("w0 w1 w2 ")
    assert await group_status(database, done.message_group_id) == "cancelled"
    assert await statuses(database, run.id) == ["pending", "running", "cancelled"]


async def _has_deltas(database: Database, run_id: str, count: int) -> bool:
    return len(await deltas(database, run_id)) >= count


async def test_an_error_mid_stream_keeps_the_text_and_fails_the_group(
    database: Database,
) -> None:
    async def script(request: AgentRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("Half an ans")
        await asyncio.sleep(0.06)
        yield TextDelta("wer")
        raise AgentError("upstream_broke", "The model went away.")

    registry, agent = await _agent(database, script)
    run = await new_run(database, agent)
    assert await Executor(database, registry, FAST).run_once()
    done = await reload(database, run.id)
    assert done.status == RunStatus.ERROR
    assert done.message_group_id is not None
    assert [text for _, _, text in await stored_messages(database, done.message_group_id)] == [
        "Half an answer"
    ]
    assert await group_status(database, done.message_group_id) == "failed"
    async with database.read() as session:
        errors = (
            await session.execute(
                RunErrorRow.__table__.select().where(  # type: ignore[attr-defined]
                    RunErrorRow.__table__.c.run_id == run.id  # type: ignore[attr-defined]
                )
            )
        ).all()
    assert [error.code for error in errors] == ["upstream_broke"]


async def test_an_unstorable_delta_ends_the_run_as_an_invalid_reply(database: Database) -> None:
    async def script(request: AgentRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("fine ")
        yield TextDelta("not \x00 fine")

    registry, agent = await _agent(database, script)
    run = await new_run(database, agent)
    assert await Executor(database, registry, FAST).run_once()
    done = await reload(database, run.id)
    assert done.status == RunStatus.ERROR
    assert done.message_group_id is not None
    assert [text for _, _, text in await stored_messages(database, done.message_group_id)] == [
        "fine "
    ]


async def test_the_echo_agent_streams_word_by_word(database: Database) -> None:
    registry = AgentRegistry([EchoKind()])
    agent = await catalog.create_agent(
        database,
        registry,
        DEFAULT_ORG_ID,
        name="Typist",
        kind="echo",
        config={"delay_ms": 0, "stream_delay_ms": 60},
    )
    run = await new_run(database, agent, "one two  three\nfour")
    assert await Executor(database, registry, FAST).run_once()
    done = await reload(database, run.id)
    assert done.status == RunStatus.SUCCESS
    assert done.message_group_id is not None
    [(_, _, text)] = await stored_messages(database, done.message_group_id)
    assert text == "one two  three\nfour"
    sent = [d["text"] for d in await deltas(database, run.id)]
    assert "".join(sent) == text
    assert len(sent) >= 2  # in pieces: a word each, or a few when a write took over 60 ms
    ends = {len("".join(sent[: index + 1])) for index in range(len(sent))}
    assert ends <= {4, 9, 15, 19}  # each delta ends after a word and its spaces


async def test_shutdown_mid_stream_cancels_the_partial_reply_and_the_next_attempt_writes_anew(
    database: Database,
) -> None:
    gate = asyncio.Event()

    async def script(request: AgentRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("first try")
        await gate.wait()
        yield TextDelta(", finished")

    registry, agent = await _agent(database, script)
    run = await new_run(database, agent)
    first = Executor(database, registry, FAST, name="first")
    await first.start()
    await _until(lambda: _text_is(database, run.id, "first try"))
    partial = (await reload(database, run.id)).message_group_id
    assert partial is not None
    await first.stop()
    released = await reload(database, run.id)
    assert (released.status, released.message_group_id) == (RunStatus.PENDING, None)
    assert await group_status(database, partial) == "cancelled"
    gate.set()
    assert await Executor(database, registry, FAST, name="second").run_once()
    done = await reload(database, run.id)
    assert done.status == RunStatus.SUCCESS
    assert done.message_group_id not in (None, partial)
    assert done.message_group_id is not None
    assert [text for _, _, text in await stored_messages(database, done.message_group_id)] == [
        "first try, finished"
    ]


async def test_a_run_waiting_for_its_agent_holds_no_database_connection(
    database: Database,
) -> None:
    release = asyncio.Event()

    async def script(request: AgentRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("waiting")
        await release.wait()

    registry, agent = await _agent(database, script)
    run = await new_run(database, agent)
    # Claims and housekeeping rarely (they are not the run's), the keeper every 0.2 s.
    executor = Executor(database, registry, replace(FAST, poll_seconds=5))
    await executor.start()
    try:
        await _until(lambda: _text_is(database, run.id, "waiting"))
        samples = []
        for _ in range(20):
            samples.append(database.engine.pool.checkedout())  # type: ignore[attr-defined]
            await asyncio.sleep(0.02)
        release.set()
        await _until(lambda: _status_is(database, run.id, RunStatus.SUCCESS))
    finally:
        await executor.stop()
    # Only the keeper's read of cancel requests (every 0.2 s, a moment each) may be caught.
    assert samples.count(0) >= 15, samples


async def test_runs_streaming_at_once_share_their_flushes_transactions(database: Database) -> None:
    async def script(request: AgentRequest) -> AsyncIterator[StreamEvent]:
        for index in range(60):
            yield TextDelta(f"{request.message.text}-{index} ")
            await asyncio.sleep(0.005)

    registry, agent = await _agent(database, script)
    texts = [f"r{index}" for index in range(6)]
    runs = [await new_run(database, agent, text) for text in texts]
    executor = Executor(database, registry, replace(FAST, concurrency=6))
    await executor.start()
    try:
        for run_id in [run.id for run in runs]:
            await _until(functools.partial(_status_is, database, run_id, RunStatus.SUCCESS))
    finally:
        await executor.stop()
    events = 0
    for run, text in zip(runs, texts, strict=True):
        sent = await deltas(database, run.id)
        assert "".join(d["text"] for d in sent) == "".join(f"{text}-{i} " for i in range(60))
        events += len(sent)
    # Each run flushed several times (its last delta goes with its end, in a transaction of its
    # own); the other flushes of different runs went in shared transactions.
    assert executor.batcher.transactions < events - len(runs), (
        executor.batcher.transactions,
        events,
    )


async def _leased(database: Database, count: int, worker: str) -> list[RunRow]:
    """`count` runs of a streaming agent, RUNNING and leased to `worker`."""
    _registry, agent = await _agent(database, _silent)
    runs = [await new_run(database, agent, f"run {index}") for index in range(count)]
    async with database.write() as session:
        return [
            await transition(session, run.id, RunStatus.RUNNING, lease_owner=worker) for run in runs
        ]


async def _silent(request: AgentRequest) -> AsyncIterator[StreamEvent]:
    return
    yield


async def _flush_all(streamed: list[StreamedRun], text: str) -> list[BaseException | None]:
    """One delta for each run, flushed at once (one batch: the first flush's writer starts
    only once every run has asked)."""
    for each in streamed:
        each.draft.add(TextDelta(text))
    return await asyncio.gather(*(each.flush() for each in streamed), return_exceptions=True)


async def _statements_of(database: Database, write: Awaitable[Any]) -> int:
    counted = 0

    def count(*_args: Any) -> None:
        nonlocal counted
        counted += 1

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        await write
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return counted


async def test_a_batch_of_flushes_takes_as_many_statements_for_six_runs_as_for_one(
    database: Database,
) -> None:
    counts = []
    for size in (1, 6):
        batcher = FlushBatcher(database)
        rows = await _leased(database, size, "w")
        streamed = [StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, batcher) for row in rows]
        assert await _flush_all(streamed, "first ") == [None] * size  # stores the groups
        counts.append(await _statements_of(database, _flush_all(streamed, "then")))
        for row in rows:
            assert [d["text"] for d in await deltas(database, row.id)] == ["first ", "then"]
            group = (await reload(database, row.id)).message_group_id
            assert group is not None
            assert [text for _, _, text in await stored_messages(database, group)] == ["first then"]
    assert counts[0] == counts[1], counts


async def test_the_next_flush_waits_its_interval_from_the_commit(database: Database) -> None:
    """A flush that waited for the database (here for another writer's turn) is not followed
    at once by the next: the interval counts from its commit."""
    if not database.is_sqlite:
        pytest.skip("the write turn is SQLite's")
    [row] = await _leased(database, 1, "w")
    streamed = StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, FlushBatcher(database))
    loop = asyncio.get_running_loop()
    commits: dict[int, float] = {}  # a flush's events, by seq: when their commit was heard

    def heard_at(event: RunEvent) -> None:
        if event.run_id == row.id:
            commits[event.seq] = loop.time()

    database.on_commit(heard_at)

    async def tokens() -> AsyncIterator[StreamEvent]:
        for index in range(80):
            yield TextDelta(f"t{index} ")
            await asyncio.sleep(0.005)

    async def hold() -> None:
        async with database.write():
            await asyncio.sleep(0.12)

    holding = asyncio.create_task(hold())
    await asyncio.sleep(0)  # it has the write turn
    assert await streamed.follow(tokens, asyncio.Event(), 10) is RunStatus.SUCCESS
    await holding
    await streamed.finish(RunStatus.SUCCESS)
    heard = sorted(commits.values())
    flushes = [at for earlier, at in itertools.pairwise([-1.0, *heard]) if at - earlier > 0.001]
    gaps = [later - earlier for earlier, later in itertools.pairwise(flushes[:-1])]  # not the end
    assert len(gaps) >= 3, flushes
    assert min(gaps) >= FLUSH_SECONDS - 0.002, gaps


async def test_a_batch_of_later_flushes_is_one_statement_on_postgresql(database: Database) -> None:
    """PostgreSQL: the runs' sequences bumped, the events inserted and notified and the texts
    appended in one statement in autocommit (no session: no BEGIN, no COMMIT, one round
    trip). SQLite: the bump, the inserts and the appends, three statements in the session's
    transaction. Either for any number of runs."""
    batcher = FlushBatcher(database)
    rows = await _leased(database, 3, "w")
    streamed = [StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, batcher) for row in rows]
    assert await _flush_all(streamed, "first ") == [None] * 3  # stores the groups
    with _watched(database) as (executed, sessions):
        assert await _flush_all(streamed, "then") == [None] * 3
    if database.is_sqlite:
        assert executed == ["UPDATE", "INSERT", "UPDATE"]
    else:
        assert (executed, sessions) == (["WITH"], [])
    for row in rows:
        assert await _gap_free(database, row.id)
        group = (await reload(database, row.id)).message_group_id
        assert group is not None
        assert [text for _, _, text in await stored_messages(database, group)] == ["first then"]


@contextlib.contextmanager
def _watched(database: Database) -> Iterator[tuple[list[str], list[object]]]:
    """The first word of each statement run (a session's BEGIN left out), and the engine's
    connections checked out (a session's transaction), while the block runs."""
    executed: list[str] = []
    sessions: list[object] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("BEGIN"):  # the transaction's, on SQLite's session path
            executed.append(statement.lstrip().split()[0].upper())

    def checked_out(connection: object, *_args: Any) -> None:
        sessions.append(connection)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    event.listen(engine.pool, "checkout", checked_out)
    try:
        yield executed, sessions
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        event.remove(engine.pool, "checkout", checked_out)


async def _gap_free(database: Database, run_id: str) -> bool:
    """Whether the run's events are numbered 1, 2, ... up to its last_event_seq."""
    seqs = [seq for seq, _, _ in await event_log(database, run_id)]
    return seqs == list(range(1, (await reload(database, run_id)).last_event_seq + 1))


async def test_first_flushes_of_an_agent_whose_actor_is_known_are_one_statement(
    database: Database,
) -> None:
    """PostgreSQL: once the agent's actor is known (the first flush of its first run looked it
    up), the first flushes of its other runs are one statement too, with later ones: their
    message groups inserted and set as their runs', their messages' text inserted whole."""
    if database.is_sqlite:
        pytest.skip("one statement in autocommit is PostgreSQL's")
    batcher = FlushBatcher(database)
    rows = await _leased(database, 3, "w")
    streamed = [StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, batcher) for row in rows]
    with _watched(database) as (_executed, sessions):
        assert await _flush_all(streamed[:1], "a ") == [None]
    assert sessions  # the actor looked up in a session's transaction
    with _watched(database) as (executed, sessions):
        assert await _flush_all(streamed, "b") == [None] * 3
    assert (executed, sessions) == (["WITH"], [])
    for each, text in zip(streamed, ["a b", "b", "b"], strict=True):
        assert each.draft.group_stored
        assert await _gap_free(database, each.run.id)
        assert (await reload(database, each.run.id)).message_group_id == each.draft.group_id
        assert await group_status(database, each.draft.group_id) == "in_progress"
        assert [text for _, _, text in await stored_messages(database, each.draft.group_id)] == [
            text
        ]


async def test_runs_of_a_new_agent_know_its_actor_before_their_first_flush(
    database: Database,
) -> None:
    """PostgreSQL: a streamed run looks up (here, makes) its agent's actor before its stream
    opens, once for runs that start together, so the first flushes of a new agent's first runs
    are one statement, as later ones are."""
    if database.is_sqlite:
        pytest.skip("one statement in autocommit is PostgreSQL's")
    batcher = FlushBatcher(database)
    rows = await _leased(database, 3, "w")
    streamed = [StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, batcher) for row in rows]
    stop = asyncio.Event()
    stop.set()  # follow looks the actor up, then stops at once
    endings = await asyncio.gather(*(each.follow(_silent_stream, stop, 5) for each in streamed))
    assert endings == [None] * 3
    agent_id = rows[0].agent_id
    async with database.read() as session:
        actors = (await session.execute(select(col(ActorRow.id)))).scalars().all()
        agent = await session.get(AgentRow, agent_id)
    assert agent is not None
    assert batcher.actors == {agent_id: agent.actor_id}
    assert [actor for actor in actors if actor == agent.actor_id] == [agent.actor_id]
    with _watched(database) as (executed, sessions):
        assert await _flush_all(streamed, "first") == [None] * 3
    assert (executed, sessions) == (["WITH"], [])
    for each in streamed:
        assert each.draft.actor_id == agent.actor_id
        assert [text for _, _, text in await stored_messages(database, each.draft.group_id)] == [
            "first"
        ]


async def _silent_stream() -> AsyncIterator[StreamEvent]:
    return
    yield


async def test_later_flushes_leave_the_runs_message_groups_as_the_first_set_them(
    database: Database,
) -> None:
    """A batch holding a first flush sets every run's message group (each to its own); a batch
    of later flushes only does not set them again."""
    batcher = FlushBatcher(database)
    rows = await _leased(database, 2, "w")
    first, second = (StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, batcher) for row in rows)
    assert await _flush_all([first], "a ") == [None]
    assert await _flush_all([first, second], "b ") == [None, None]  # a later and a first
    updates: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "UPDATE RUNS" in statement.upper():  # alone, or (PostgreSQL) the flush's WITH clause
            updates.append(statement)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert await _flush_all([first, second], "c") == [None, None]  # later ones only
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert updates
    assert not any("message_group_id" in update for update in updates), updates
    for streamed, text in ((first, "a b c"), (second, "b c")):
        group = (await reload(database, streamed.run.id)).message_group_id
        assert group == streamed.draft.group_id
        assert [text for _, _, text in await stored_messages(database, group)] == [text]


async def test_a_run_whose_lease_was_lost_fails_alone_in_a_batch_of_flushes(
    database: Database,
) -> None:
    kept, lost = await _leased(database, 2, "w")
    async with database.write() as session:
        await session.execute(
            update(RunRow).where(col(RunRow.id) == lost.id).values(lease_owner="another")
        )
    batcher = FlushBatcher(database)
    streamed = [StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, batcher) for row in (kept, lost)]
    written, refused = await _flush_all(streamed, "hello")
    assert written is None
    assert isinstance(refused, Conflict)
    assert batcher.transactions == 1  # the shared one rolled back, the kept run's own committed
    assert [d["text"] for d in await deltas(database, kept.id)] == ["hello"]
    assert await deltas(database, lost.id) == []
    assert (await reload(database, lost.id)).message_group_id is None
    assert (streamed[0].draft.group_stored, streamed[1].draft.group_stored) == (True, False)


async def _lose(database: Database, *rows: RunRow) -> None:
    async with database.write() as session:
        await session.execute(
            update(RunRow)
            .where(col(RunRow.id).in_([row.id for row in rows]))
            .values(lease_owner="another")
        )


async def _texts(database: Database, streamed: StreamedRun) -> list[str]:
    return [text for _, _, text in await stored_messages(database, streamed.draft.group_id)]


async def test_a_lost_lease_writes_nothing_for_its_run_and_no_gap_for_the_others(
    database: Database,
) -> None:
    """The batch's statement (PostgreSQL: its one statement) is refused whole; each run is
    then written alone: the kept run's events follow on without a gap, the lost run's text,
    events and sequence stay as they were."""
    batcher = FlushBatcher(database)
    kept, lost = (
        StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, batcher)
        for row in await _leased(database, 2, "w")
    )
    assert await _flush_all([kept, lost], "a ") == [None, None]
    logged = await event_log(database, lost.run.id)
    await _lose(database, lost.run)
    with _watched(database) as (executed, _sessions):
        written, refused = await _flush_all([kept, lost], "b")
    assert written is None
    assert isinstance(refused, Conflict)
    if not database.is_sqlite:  # the batch's, refused; the kept run's; the lost run's, refused
        assert executed == ["WITH", "WITH", "WITH"]
    assert await _gap_free(database, kept.run.id)
    assert [d["text"] for d in await deltas(database, kept.run.id)] == ["a ", "b"]
    assert await _texts(database, kept) == ["a b"]
    assert await event_log(database, lost.run.id) == logged
    assert (await reload(database, lost.run.id)).last_event_seq == logged[-1][0]
    assert await _texts(database, lost) == ["a "]


async def test_a_batch_whose_every_run_was_lost_writes_nothing(database: Database) -> None:
    """No run of the batch bumped (PostgreSQL: the statement's check still made), first
    flushes or later ones: no group, no message, no event, no text."""
    batcher = FlushBatcher(database)
    known, *firsts = (
        StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, batcher)
        for row in await _leased(database, 3, "w")
    )
    assert await _flush_all([known], "a ") == [None]  # the agent's actor is known from now on
    logged = [await event_log(database, each.run.id) for each in (known, *firsts)]
    await _lose(database, *(each.run for each in (known, *firsts)))
    refused = await _flush_all(firsts, "b")
    assert all(isinstance(error, Conflict) for error in refused), refused
    [later] = await _flush_all([known], "c")
    assert isinstance(later, Conflict)
    assert [await event_log(database, each.run.id) for each in (known, *firsts)] == logged
    assert await _texts(database, known) == ["a "]
    for each in firsts:
        assert not each.draft.group_stored
        assert (await reload(database, each.run.id)).message_group_id is None
        assert await stored_messages(database, each.draft.group_id) == []
        async with database.read() as session:
            assert await session.get(MessageGroupRow, each.draft.group_id) is None


async def test_concurrent_flushers_of_the_same_runs_number_their_events_without_gaps(
    database: Database,
) -> None:
    """Three batchers (as three processes' would) flush their own messages into the same runs
    at once, while sessions append events to them too: each run's events are numbered
    1, 2, ... with no gap or duplicate, and each message's text is its deltas in order."""
    rows = await _leased(database, 3, "w")
    flushers = [
        [StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, FlushBatcher(database)) for row in rows]
        for _ in range(3)
    ]

    async def stream(streamed: list[StreamedRun], name: str) -> None:
        for index in range(8):
            assert await _flush_all(streamed, f"{name}{index} ") == [None] * len(streamed)

    async def append() -> None:
        for _ in range(8):
            async with database.write() as session:
                for row in sorted(rows, key=lambda row: row.id):  # in id order, as flushes lock
                    await append_event(session, row.id, RunEventType.ITEM_ATTACHED, {}, held_by="w")

    await asyncio.gather(
        *(stream(each, name) for each, name in zip(flushers, "xyz", strict=True)), append()
    )
    for row in rows:
        assert await _gap_free(database, row.id)
    for streamed, name in zip(flushers, "xyz", strict=True):
        for each in streamed:
            assert await _texts(database, each) == ["".join(f"{name}{i} " for i in range(8))]


async def test_a_flush_in_one_statement_notifies_at_commit_what_it_announces_in_process(
    database: Database,
) -> None:
    """PostgreSQL: the NOTIFYs the statement sends are the announcements of the events given
    to the commit listeners, seq included: a small event carried, a large one by its ids."""
    if database.is_sqlite:
        pytest.skip("NOTIFY is PostgreSQL's")
    batcher = FlushBatcher(database)
    streamed = [
        StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, batcher)
        for row in await _leased(database, 2, "w")
    ]
    assert await _flush_all(streamed, "a ") == [None, None]
    heard: list[str] = []
    committed: list[RunEvent] = []
    url = database.engine.url.set(drivername="postgresql")
    listener = await asyncpg.connect(url.render_as_string(hide_password=False))
    await listener.add_listener(NOTIFY_CHANNEL, lambda *notice: heard.append(notice[3]))
    database.on_commit(committed.append)
    try:
        streamed[0].draft.add(TextDelta("x" * MAX_CARRIED))
        streamed[1].draft.add(TextDelta("small"))
        with _watched(database) as (executed, _sessions):
            assert await asyncio.gather(*(each.flush() for each in streamed)) == [None, None]

        async def both_heard() -> bool:
            return len(heard) >= 2

        await _until(both_heard)
    finally:
        database.remove_commit_listener(committed.append)
        await listener.close()
    assert executed == ["WITH"]
    assert sorted(heard) == sorted(event.announcement() for event in committed)
    large, small = sorted(committed, key=lambda event: len(event.payload["text"]), reverse=True)
    assert Announcement.parse(large.announcement()).event is None
    assert Announcement.parse(small.announcement()).event == small
    for each, heard_of in zip(streamed, (large, small), strict=True):
        assert (heard_of.run_id, heard_of.seq) == (
            each.run.id,
            (await reload(database, each.run.id)).last_event_seq,
        )


async def _later(seconds: float, work: Awaitable[object]) -> None:
    await asyncio.sleep(seconds)
    await work


async def test_a_flush_left_by_a_cancelled_run_is_finished_or_cancelled_by_drain(
    database: Database,
) -> None:
    """A run cancelled while its flush is written leaves the write to the batcher (its steps
    are written anyway): drain waits for it, and cancels one that outlasts its time, so that a
    stopping executor leaves no write holding a connection. PostgreSQL: a row lock held
    elsewhere keeps the write waiting."""
    if database.is_sqlite:
        pytest.skip("a row lock held elsewhere is PostgreSQL's")
    batcher = FlushBatcher(database)
    [streamed] = [
        StreamedRun(database, row, "w", DEFAULT_JSON_CAPS, batcher)
        for row in await _leased(database, 1, "w")
    ]
    assert await _flush_all([streamed], "a ") == [None]
    url = database.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    holder = await asyncpg.connect(url)
    try:
        for more, seconds in (("b", 5.0), ("c", 0.2)):
            held = holder.transaction()
            await held.start()
            await holder.execute("SELECT id FROM runs WHERE id = $1 FOR UPDATE", streamed.run.id)
            streamed.draft.add(TextDelta(more))
            flushing = asyncio.ensure_future(streamed.flush())
            async with asyncio.timeout(10):
                while not await holder.fetchval(  # noqa: ASYNC110 (PostgreSQL offers no event)
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                ):
                    await asyncio.sleep(0.01)
            flushing.cancel()  # the run is cancelled: its write goes on in the batcher
            with contextlib.suppress(asyncio.CancelledError):
                await flushing
            if more == "b":  # released soon: drain waits for the write
                release = asyncio.ensure_future(_later(0.2, held.rollback()))
                await batcher.drain(seconds)
                await release
            else:  # held past drain's time: the write is cancelled
                await batcher.drain(seconds)
                await held.rollback()
            writing = batcher._writing
            assert writing is not None
            assert writing.done()
    finally:
        await holder.close()
    assert [d["text"] for d in await deltas(database, streamed.run.id)] == ["a ", "b"]
