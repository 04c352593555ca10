"""The executor: runs go PENDING -> RUNNING -> terminal, exactly once, and survive workers."""

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest
from sqlmodel import col

from runql.agents import catalog
from runql.agents.echo import EchoKind
from runql.agents.protocol import (
    AgentError,
    AgentReply,
    AgentRequest,
    AttachedValue,
    Cost,
    Part,
    ReplyMessage,
)
from runql.agents.registry import AgentRegistry
from runql.enums import RunStatus
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.lifecycle.runs import cancel_run
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID, AgentRow, MessageGroupRow, RunErrorRow, RunRow
from tests.lifecycle.conftest import event_log, new_run, reload, statuses

Behaviour = Callable[[AgentRequest], Awaitable[AgentReply]]


class ScriptedAgent:
    def __init__(self, behave: Behaviour) -> None:
        self.behave = behave

    async def run(self, request: AgentRequest) -> AgentReply:
        return await self.behave(request)


class ScriptedKind:
    """A third-party kind, as an entry point would provide one."""

    name = "scripted"

    def __init__(self, behave: Behaviour) -> None:
        self.behave = behave

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return dict(config)

    def create(self, config: Mapping[str, Any]) -> ScriptedAgent:
        return ScriptedAgent(self.behave)


FAST = ExecutorConfig(
    concurrency=2,
    lease_seconds=5,
    poll_seconds=0.05,
    agent_timeout_seconds=5,
    shutdown_grace_seconds=0.2,
)


async def _scripted(database: Database, behave: Behaviour) -> tuple[AgentRegistry, AgentRow]:
    registry = AgentRegistry([EchoKind(), ScriptedKind(behave)])
    agent = await catalog.create_agent(
        database, registry, DEFAULT_ORG_ID, name="Scripted", kind="scripted", config={}
    )
    return registry, agent


async def _until(predicate: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def _status_is(database: Database, run_id: str, *wanted: RunStatus) -> bool:
    return (await reload(database, run_id)).status in wanted


async def test_an_echo_run_goes_pending_running_success_with_its_reply(
    database: Database, echo: AgentRow
) -> None:
    run = await new_run(database, echo, "Hello, world!")
    executor = Executor(database, AgentRegistry([EchoKind()]), FAST)
    assert await executor.run_once()
    done = await reload(database, run.id)
    assert done.status == RunStatus.SUCCESS
    assert done.created_at <= done.started_at <= done.completed_at  # type: ignore[operator]
    assert (done.cost_amount, done.cost_unit) == (0.0, "credits")
    async with database.read() as session:
        reply = await session.get(MessageGroupRow, done.message_group_id)
    assert reply is not None
    assert reply.type == "assistant_message"
    assert reply.parent_message_group_id == run.trigger_message_group_id
    log = await event_log(database, run.id)
    assert [seq for seq, _, _ in log] == [1, 2, 3, 4]
    assert [kind for _, kind, _ in log] == [
        "status_changed",
        "status_changed",
        "message_added",
        "status_changed",
    ]
    assert await statuses(database, run.id) == ["pending", "running", "success"]


async def test_replies_carry_items_and_cost(database: Database) -> None:
    async def reply(request: AgentRequest) -> AgentReply:
        message = ReplyMessage((Part(f"re: {request.message.text}"),))
        item = AttachedValue("sentiment", {"label": "positive"})
        return AgentReply((message,), (item,), Cost(2.5, "credits"))

    registry, agent = await _scripted(database, reply)
    run = await new_run(database, agent, "hi")
    assert await Executor(database, registry, FAST).run_once()
    done = await reload(database, run.id)
    assert (done.status, done.cost_amount) == (RunStatus.SUCCESS, 2.5)
    kinds = [kind for _, kind, _ in await event_log(database, run.id)]
    assert kinds == [
        "status_changed",
        "status_changed",
        "message_added",
        "item_attached",
        "status_changed",
    ]


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (AgentError("quota_exceeded", "The agent's quota is spent."), "quota_exceeded"),
        (KeyError("boom"), "agent_failed"),
    ],
)
async def test_an_agent_that_raises_ends_the_run_in_error(
    database: Database, failure: Exception, code: str
) -> None:
    async def fail(request: AgentRequest) -> AgentReply:
        raise failure

    registry, agent = await _scripted(database, fail)
    run = await new_run(database, agent)
    assert await Executor(database, registry, FAST).run_once()
    assert (await reload(database, run.id)).status == RunStatus.ERROR
    async with database.read() as session:
        from sqlalchemy import select

        errors = (
            (await session.execute(select(RunErrorRow).where(col(RunErrorRow.run_id) == run.id)))
            .scalars()
            .all()
        )
    assert [error.code for error in errors] == [code]
    assert await statuses(database, run.id) == ["pending", "running", "error"]


async def test_an_agent_that_times_out_ends_the_run_in_error(database: Database) -> None:
    async def hang(request: AgentRequest) -> AgentReply:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    registry, agent = await _scripted(database, hang)
    run = await new_run(database, agent)
    config = ExecutorConfig(
        concurrency=1, lease_seconds=5, poll_seconds=0.05, agent_timeout_seconds=0.3
    )
    assert await Executor(database, registry, config).run_once()
    assert (await reload(database, run.id)).status == RunStatus.ERROR
    kinds = [
        payload for _, kind, payload in await event_log(database, run.id) if kind == "error_added"
    ]
    assert len(kinds) == 1


async def test_an_expired_lease_is_recovered_as_an_error(
    database: Database, echo: AgentRow
) -> None:
    run = await new_run(database, echo)
    dead = Executor(
        database, AgentRegistry([EchoKind()]), ExecutorConfig(lease_seconds=1), name="dead-worker"
    )
    claimed = await dead.claim()  # claims, then "dies": never renews, never finishes
    assert claimed is not None
    survivor = Executor(database, AgentRegistry([EchoKind()]), FAST, name="survivor")
    assert await survivor.recover_expired() == 0  # within its lease (1 s, room for a busy box)
    await asyncio.sleep(1.1)
    assert await survivor.recover_expired() == 1
    assert (await reload(database, run.id)).status == RunStatus.ERROR
    assert await statuses(database, run.id) == ["pending", "running", "error"]
    assert [p for _, kind, p in await event_log(database, run.id) if kind == "error_added"]


async def test_cancelling_a_running_run_stops_its_agent(database: Database) -> None:
    stopped = asyncio.Event()

    async def slow(request: AgentRequest) -> AgentReply:
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()
        raise AssertionError("unreachable")

    registry, agent = await _scripted(database, slow)
    run = await new_run(database, agent)
    executor = Executor(database, registry, FAST)
    await executor.start()
    try:
        await _until(lambda: _status_is(database, run.id, RunStatus.RUNNING))
        assert (await cancel_run(database, DEFAULT_ORG_ID, run.id)).status == RunStatus.RUNNING
        await _until(lambda: _status_is(database, run.id, RunStatus.CANCELLED))
    finally:
        await executor.stop()
    assert stopped.is_set()
    assert await statuses(database, run.id) == ["pending", "running", "cancelled"]


async def test_shutdown_releases_a_run_that_another_worker_then_finishes(
    database: Database,
) -> None:
    gate = asyncio.Event()

    async def wait_for_gate(request: AgentRequest) -> AgentReply:
        await gate.wait()
        return AgentReply((ReplyMessage((Part("done"),)),))

    registry, agent = await _scripted(database, wait_for_gate)
    run = await new_run(database, agent)
    first = Executor(database, registry, FAST, name="first")
    await first.start()
    await _until(lambda: _status_is(database, run.id, RunStatus.RUNNING))
    await first.stop()
    assert (await reload(database, run.id)).status == RunStatus.PENDING
    gate.set()
    second = Executor(database, registry, FAST, name="second")
    assert await second.run_once()
    assert await statuses(database, run.id) == [
        "pending",
        "running",
        "pending",
        "running",
        "success",
    ]


async def test_two_executors_never_run_one_run_twice(database: Database) -> None:
    executed: Counter[str] = Counter()

    async def count(request: AgentRequest) -> AgentReply:
        executed[request.run_id] += 1
        await asyncio.sleep(0.01)
        return AgentReply((ReplyMessage((Part("ok"),)),))

    registry, agent = await _scripted(database, count)
    runs: list[RunRow] = [await new_run(database, agent) for _ in range(24)]
    executors = [Executor(database, registry, FAST, name=f"worker-{i}") for i in range(2)]
    for executor in executors:
        await executor.start()
    try:

        async def all_done() -> bool:
            return all([await _status_is(database, r.id, RunStatus.SUCCESS) for r in runs])

        await _until(all_done, seconds=30)
    finally:
        for executor in executors:
            await executor.stop()
    assert executed == Counter({run.id: 1 for run in runs})


async def test_runs_of_one_thread_execute_one_at_a_time_in_order(database: Database) -> None:
    order: list[str] = []
    active = 0

    async def serial(request: AgentRequest) -> AgentReply:
        nonlocal active
        active += 1
        assert active == 1, "two runs of one thread ran at once"
        order.append(request.message.text)
        await asyncio.sleep(0.02)
        active -= 1
        return AgentReply((ReplyMessage((Part("ok"),)),))

    registry, agent = await _scripted(database, serial)
    first = await new_run(database, agent, "1")
    later = [await new_run(database, agent, str(n), thread_id=first.thread_id) for n in range(2, 5)]
    executor = Executor(database, registry, ExecutorConfig(concurrency=3, poll_seconds=0.05))
    await executor.start()
    try:
        await _until(lambda: _status_is(database, later[-1].id, RunStatus.SUCCESS))
    finally:
        await executor.stop()
    assert order == ["1", "2", "3", "4"]


async def test_the_agent_sees_the_thread_history(database: Database) -> None:
    seen: list[list[str]] = []

    async def remember(request: AgentRequest) -> AgentReply:
        seen.append([turn.text for turn in request.history])
        return AgentReply((ReplyMessage((Part(f"echo {request.message.text}"),)),))

    registry, agent = await _scripted(database, remember)
    executor = Executor(database, registry, FAST)
    first = await new_run(database, agent, "first")
    assert await executor.run_once()
    await new_run(database, agent, "second", thread_id=first.thread_id)
    assert await executor.run_once()
    assert seen == [[], ["first", "echo first"]]


async def test_a_threads_later_run_waits_while_its_older_run_is_locked_elsewhere(
    database: Database, echo: AgentRow, backend: Any
) -> None:
    """On PostgreSQL claims skip locked rows: the skip must not let a thread's second run
    overtake its first (held, say, by a worker whose claim then rolls back)."""
    if backend.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serializes every write instead")
    from sqlalchemy import select

    first = await new_run(database, echo, "1")
    await new_run(database, echo, "2", thread_id=first.thread_id)
    async with database.write() as session:
        await session.execute(select(RunRow).where(col(RunRow.id) == first.id).with_for_update())
        assert await Executor(database, AgentRegistry([EchoKind()]), FAST).claim() is None
    claimed = await Executor(database, AgentRegistry([EchoKind()]), FAST).claim()
    assert claimed is not None
    assert claimed.id == first.id


async def test_many_runs_are_in_flight_at_once_up_to_the_cap(database: Database) -> None:
    """Agents mostly wait: one executor holds `concurrency` (40) of them in flight at once,
    never more, and starts the rest as they finish."""
    in_flight = 0
    most = 0
    full = asyncio.Event()

    async def wait(request: AgentRequest) -> AgentReply:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 40:
            full.set()
        with contextlib.suppress(TimeoutError):  # the first 40 wait for each other
            await asyncio.wait_for(full.wait(), 20)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return AgentReply((ReplyMessage((Part("ok"),)),))

    registry, agent = await _scripted(database, wait)
    runs = [await new_run(database, agent, str(n)) for n in range(60)]
    config = ExecutorConfig(concurrency=40, lease_seconds=10, poll_seconds=0.05)
    executor = Executor(database, registry, config)
    await executor.start()
    try:

        async def all_done() -> bool:
            return all([await _status_is(database, r.id, RunStatus.SUCCESS) for r in runs])

        await _until(all_done, seconds=40)
    finally:
        await executor.stop()
    assert full.is_set()  # 40 were in flight together
    assert most == 40  # and never more


async def test_the_keeper_renews_every_lease_in_one_statement(database: Database) -> None:
    """Leases of all the runs in flight are renewed together, and the runs keep them past
    their first lease."""
    gate = asyncio.Event()

    async def wait_for_gate(request: AgentRequest) -> AgentReply:
        await gate.wait()
        return AgentReply((ReplyMessage((Part("done"),)),))

    registry, agent = await _scripted(database, wait_for_gate)
    runs = [await new_run(database, agent, str(n)) for n in range(12)]
    config = ExecutorConfig(  # leases of 3 s: a keeper late under a loaded CI loses none
        concurrency=20, lease_seconds=3.0, poll_seconds=0.05, agent_timeout_seconds=30
    )
    executor = Executor(database, registry, config)
    renewals: list[list[str]] = []
    renew = executor._renew

    async def counted(run_ids: list[str]) -> dict[str, bool]:
        renewals.append(run_ids)
        return await renew(run_ids)

    executor._renew = counted  # type: ignore[method-assign]
    await executor.start()
    try:

        async def all_running() -> bool:
            return all([await _status_is(database, r.id, RunStatus.RUNNING) for r in runs])

        await _until(all_running)
        await asyncio.sleep(6.5)  # past two leases: they live only if renewed
        assert all([await _status_is(database, r.id, RunStatus.RUNNING) for r in runs])
        assert await executor.recover_expired() == 0
        assert any(len(batch) == len(runs) for batch in renewals), [len(b) for b in renewals]
        gate.set()

        async def all_done() -> bool:
            return all([await _status_is(database, r.id, RunStatus.SUCCESS) for r in runs])

        await _until(all_done)
    finally:
        gate.set()
        await executor.stop()
