"""Outcomes of runs that end together: written in one transaction, each run's events numbered
without gaps; a run whose lease was lost fails alone; a new agent gets one actor."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from runql.agents import catalog
from runql.agents.echo import EchoKind
from runql.agents.protocol import AgentReply, AgentRequest, AttachedValue, Part, ReplyMessage
from runql.agents.registry import AgentRegistry
from runql.enums import ActorType, RunStatus
from runql.lifecycle.conversation import agent_actor
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID, ActorRow, AgentRow, MessageRow, RunRow
from tests.lifecycle.conftest import event_log, new_run, reload
from tests.lifecycle.test_executor import ScriptedKind

CONFIG = ExecutorConfig(concurrency=20, lease_seconds=30, poll_seconds=0.05)


async def _until(predicate: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def _all(database: Database, runs: Sequence[RunRow], status: RunStatus) -> bool:
    return all([(await reload(database, run.id)).status == status for run in runs])


def _gated(gate: asyncio.Event) -> ScriptedKind:
    async def reply(request: AgentRequest) -> AgentReply:
        await gate.wait()
        message = ReplyMessage((Part(f"re: {request.message.text}"),))
        return AgentReply((message,), (AttachedValue("n", request.message.text),))

    return ScriptedKind(reply)


async def _started(
    database: Database, runs: int, gate: asyncio.Event
) -> tuple[Executor, AgentRow, list[RunRow], list[int]]:
    """An executor holding `runs` runs of a new agent, each waiting for the gate, and the
    sizes of the outcome batches it writes."""
    registry = AgentRegistry([EchoKind(), _gated(gate)])
    agent = await catalog.create_agent(
        database, registry, DEFAULT_ORG_ID, name="Gated", kind="scripted", config={}
    )
    made = [await new_run(database, agent, str(n)) for n in range(runs)]
    executor = Executor(database, registry, CONFIG)
    batches: list[int] = []
    write = executor._write_outcomes

    async def counted(session: AsyncSession, ended: Sequence[Any]) -> list[RunRow | Exception]:
        batches.append(len(ended))
        return await write(session, ended)

    executor._outcomes._write = counted
    await executor.start()
    await _until(lambda: _all(database, made, RunStatus.RUNNING))
    return executor, agent, made, batches


async def test_runs_ending_together_share_a_transaction_and_a_lost_lease_fails_alone(
    database: Database,
) -> None:
    gate = asyncio.Event()
    executor, _, runs, batches = await _started(database, 6, gate)
    lost, kept = runs[0], runs[1:]
    try:
        async with database.write() as session:
            await session.execute(
                update(RunRow).where(col(RunRow.id) == lost.id).values(lease_owner="elsewhere")
            )
        gate.set()
        await _until(lambda: _all(database, kept, RunStatus.SUCCESS))
    finally:
        gate.set()
        await executor.stop()
    assert max(batches) > 1, batches  # more than one run in a transaction
    stolen = await reload(database, lost.id)
    assert (stolen.status, stolen.lease_owner) == (RunStatus.RUNNING, "elsewhere")
    assert [kind for _, kind, _ in await event_log(database, lost.id)] == [
        "status_changed",
        "status_changed",
    ]
    for run in kept:
        log = await event_log(database, run.id)
        assert [seq for seq, _, _ in log] == [1, 2, 3, 4, 5]
        assert [kind for _, kind, _ in log] == [
            "status_changed",
            "status_changed",
            "message_added",
            "item_attached",
            "status_changed",
        ]
        assert log[-1][2] == {"status": "success"}


async def test_runs_of_a_new_agent_ending_together_make_one_actor(database: Database) -> None:
    gate = asyncio.Event()
    executor, agent, runs, _ = await _started(database, 4, gate)
    try:
        gate.set()
        await _until(lambda: _all(database, runs, RunStatus.SUCCESS))
    finally:
        await executor.stop()
    async with database.read() as session:
        actors = (
            await session.execute(
                select(func.count()).where(col(ActorRow.type) == ActorType.AGENT.value)
            )
        ).scalar_one()
        stored = await session.get(AgentRow, agent.id)
        writers = set(
            (
                await session.execute(
                    select(col(MessageRow.actor_id)).where(
                        col(MessageRow.message_group_id).in_(
                            [(await reload(database, run.id)).message_group_id for run in runs]
                        )
                    )
                )
            )
            .scalars()
            .all()
        )
    assert actors == 1
    assert stored is not None
    assert writers == {stored.actor_id}


async def test_an_actor_made_by_a_rolled_back_transaction_is_not_remembered(
    database: Database,
) -> None:
    """Two runs of an agent without an actor in one transaction: the second reads back the
    actor the first made. When that transaction rolls back, the actor is gone, so it must not
    be remembered for the next transaction (whose rows would name an actor that does not
    exist)."""
    registry = AgentRegistry([EchoKind()])
    agent = await catalog.create_agent(
        database, registry, DEFAULT_ORG_ID, name="New", kind="echo", config={}
    )
    async with database.write() as session:  # as an agent stored before it had an actor
        await session.execute(
            update(AgentRow).where(col(AgentRow.id) == agent.id).values(actor_id=None)
        )
    known: dict[str, str] = {}

    class RolledBack(Exception):
        pass

    try:
        async with database.write() as session:
            first = await agent_actor(session, agent.id, known)
            assert await agent_actor(session, agent.id, known) == first
            raise RolledBack
    except RolledBack:
        pass
    assert known == {}
    async with database.write() as session:
        second = await agent_actor(session, agent.id, known)
    assert second != first
    async with database.read() as session:
        assert await session.get(ActorRow, second) is not None
        assert await session.get(ActorRow, first) is None
