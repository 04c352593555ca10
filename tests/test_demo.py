"""Demo data follows the run model: running runs hold a lease that recovery ends, pending runs
are the Echo agent's, so a server with workers takes every unfinished run to an end."""

import asyncio
from collections import Counter

from sqlalchemy import select
from sqlmodel import col

from runql.agents.registry import default_registry
from runql.demo import DEMO_LEASE, DEMO_WORKER
from runql.enums import RunStatus
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.storage.database import Database
from runql.storage.tables import AgentRow, RunErrorRow, RunRow
from tests.conftest import DEMO_NOW, DEMO_RUNS


async def _runs(database: Database) -> list[tuple[RunRow, AgentRow]]:
    async with database.read() as session:
        rows = (
            await session.execute(
                select(RunRow, AgentRow)
                .join(AgentRow, col(AgentRow.id) == col(RunRow.agent_id))
                .order_by(col(RunRow.created_at))
            )
        ).all()
    return [(run, agent) for run, agent in rows]


async def test_running_runs_hold_a_lease_and_pending_runs_are_the_echo_agent_s(
    demo_database: Database,
) -> None:
    runs = await _runs(demo_database)
    statuses = Counter(run.status for run, _ in runs)
    assert set(statuses) == {status.value for status in RunStatus}
    for run, agent in runs:
        if run.status == RunStatus.RUNNING:
            assert run.lease_owner == DEMO_WORKER
            assert run.lease_expires_at is not None
            assert run.lease_expires_at.replace(tzinfo=DEMO_NOW.tzinfo) == DEMO_NOW + DEMO_LEASE
        else:
            assert (run.lease_owner, run.lease_expires_at) == (None, None)
        if run.status == RunStatus.PENDING:
            assert agent.kind == "echo"
    newest, _ = runs[-1]
    assert newest.status == RunStatus.PENDING


async def test_workers_take_every_unfinished_demo_run_to_an_end(demo_database: Database) -> None:
    before = Counter(run.status for run, _ in await _runs(demo_database))
    executor = Executor(demo_database, default_registry(), ExecutorConfig(concurrency=1))
    # The demo's leases ended long ago (DEMO_NOW is in the past): recovery takes them.
    assert await executor.recover_expired() == before[RunStatus.RUNNING.value]
    done = await asyncio.gather(
        *(executor.run_once() for _ in range(before[RunStatus.PENDING.value]))
    )
    assert all(done)
    after = Counter(run.status for run, _ in await _runs(demo_database))
    assert after[RunStatus.RUNNING.value] == after[RunStatus.PENDING.value] == 0
    assert after[RunStatus.SUCCESS.value] == (
        before[RunStatus.SUCCESS.value] + before[RunStatus.PENDING.value]
    )
    assert sum(after.values()) == DEMO_RUNS
    async with demo_database.read() as session:
        codes = Counter((await session.execute(select(col(RunErrorRow.code)))).scalars())
    assert codes["lease_expired"] == before[RunStatus.RUNNING.value]
