"""Workers that execute runs: claim a pending run, hold its lease, run its agent, record the
outcome. Expired leases (a worker that died) are recovered; shutdown releases what it holds."""

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from runql.agents.instances import AgentInstances
from runql.agents.protocol import AgentError, AgentReply
from runql.agents.registry import AgentRegistry
from runql.bus.hub import Hub, Notice
from runql.enums import RunStatus
from runql.errors import Conflict
from runql.lifecycle.conversation import agent_request, write_error, write_reply
from runql.lifecycle.replies import storable, unwritable
from runql.lifecycle.runs import DEFAULT_JSON_CAPS, IDEMPOTENCY_WINDOW
from runql.lifecycle.transitions import transition
from runql.settings import Settings
from runql.storage.database import Database
from runql.storage.events import RunEvent
from runql.storage.tables import AgentRow, IdempotencyKeyRow, RunRow, ThreadRow
from runql.storage.types import utcnow
from runql.text import JsonCaps

log = logging.getLogger("runql.executor")

CANCEL_CHECK_SECONDS = 0.2
CLAIM_ATTEMPTS = 3
SETTLE_SECONDS = 2.0  # how long stop() lets idle tasks finish their statement


@dataclass(frozen=True)
class ExecutorConfig:
    concurrency: int = 4
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    agent_timeout_seconds: float = 300.0
    shutdown_grace_seconds: float = 10.0
    json_caps: JsonCaps = DEFAULT_JSON_CAPS

    @classmethod
    def from_settings(cls, settings: Settings) -> "ExecutorConfig":
        return cls(
            concurrency=settings.workers, lease_seconds=settings.lease_seconds,
            poll_seconds=settings.poll_seconds,
            agent_timeout_seconds=settings.agent_timeout_seconds,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
            json_caps=settings.json_caps,
        )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _older_pending_in_thread() -> Any:
    """Whether the run's thread has an older pending run: only a thread's oldest pending run
    may be claimed, whatever other workers hold locked or roll back."""
    older: Any = aliased(RunRow)
    run: Any = RunRow
    return exists().where(
        older.thread_id == run.thread_id,
        older.status == RunStatus.PENDING.value,
        or_(older.created_at < run.created_at,
            and_(older.created_at == run.created_at, older.id < run.id)),
    )


class _LeaseLost(Exception):
    pass


class Executor:
    def __init__(self, database: Database, registry: AgentRegistry,
                 config: ExecutorConfig | None = None, *, name: str | None = None,
                 hub: Hub | None = None) -> None:
        """With a hub, new runs of other processes wake the workers too (its feeder hears
        them); without, this process's commits do, and others' are found by polling."""
        self.hub = hub
        self.database = database
        self.registry = registry
        self.agents = AgentInstances(registry)
        self.config = config or ExecutorConfig()
        self.name = name or worker_name()
        self.recovered = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()  # housekeeping's sleep ends at once on stop
        self._tasks: list[asyncio.Task[None]] = []
        self._executing: set[asyncio.Task[None]] = set()

    # -- running ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.hub is not None:
            self.hub.observe(self._on_notice)
        else:
            self.database.on_commit(self._on_commit)
        self._tasks = [asyncio.create_task(self._slot(), name=f"runql-slot-{i}")
                       for i in range(self.config.concurrency)]
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="runql-housekeeping"))

    @property
    def running(self) -> bool:
        """Started, and none of its slots or its housekeeping has ended."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    async def stop(self) -> None:
        """Stop claiming, let running agents finish within the grace period, then release the
        runs still held (back to PENDING, for another worker) and close the agents."""
        self._stopping = True
        self._wake.set()
        self._stopped.set()
        if self._executing:
            await asyncio.wait(set(self._executing), timeout=self.config.shutdown_grace_seconds)
        # Idle slots and housekeeping end by themselves once their statement is done: one
        # cancelled while it opens a database connection could leave that socket unclosed.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=SETTLE_SECONDS)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.agents.close()
        if self.hub is not None:
            self.hub.unobserve(self._on_notice)
        else:
            self.database.remove_commit_listener(self._on_commit)

    def _on_commit(self, event: RunEvent) -> None:
        self._wake_for(event.status)

    def _on_notice(self, notice: Notice) -> None:
        self._wake_for(notice.status)

    def _wake_for(self, status: str | None) -> None:
        if status == RunStatus.PENDING.value:
            self._wake.set()

    async def _slot(self) -> None:
        while not self._stopping:
            try:
                worked = await self.run_once()
            except Exception:
                log.exception("a worker slot failed; it carries on")
                worked = False
            if not worked and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)

    async def _housekeeping(self) -> None:
        while not self._stopping:
            try:
                await self.recover_expired()
                await self.forget_old_idempotency_keys()
            except Exception:
                log.exception("housekeeping failed; it carries on")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.config.poll_seconds)

    async def run_once(self) -> bool:
        """Claim one pending run and execute it; False when there was none to claim."""
        run = await self.claim()
        if run is None:
            return False
        task = asyncio.current_task()
        assert task is not None
        self._executing.add(task)
        try:
            await self._execute(run)
        finally:
            self._executing.discard(task)
        return True

    # -- claiming and leases -------------------------------------------------------------------

    def _lease_end(self) -> datetime:
        return utcnow() + timedelta(seconds=self.config.lease_seconds)

    async def claim(self) -> RunRow | None:
        """Take the oldest pending run of a thread that is executing nothing (runs of one
        thread go one at a time, in order). A select picks it (skipping rows other workers
        hold, on PostgreSQL); the state machine's conditional updates of the run and of its
        thread make sure no other worker took either first."""
        for _ in range(CLAIM_ATTEMPTS):
            try:
                return await self._claim_once()
            except Conflict:
                continue  # another worker won that run or its thread: pick again
        return None

    async def _claim_once(self) -> RunRow | None:
        async with self.database.write() as session:
            candidate = (
                select(col(RunRow.id))
                .join(ThreadRow, col(ThreadRow.id) == col(RunRow.thread_id))
                .where(col(RunRow.status) == RunStatus.PENDING.value,
                       col(ThreadRow.active_run_id).is_(None),
                       ~_older_pending_in_thread())
                .order_by(col(RunRow.created_at), col(RunRow.id))
                .limit(1)
            )
            if not self.database.is_sqlite:
                candidate = candidate.with_for_update(skip_locked=True, of=[RunRow, ThreadRow])
            run_id = (await session.execute(candidate)).scalar_one_or_none()
            if run_id is None:
                return None
            return await transition(session, run_id, RunStatus.RUNNING,
                                    lease_owner=self.name, lease_expires_at=self._lease_end())

    async def _renew(self, run_id: str) -> bool:
        """Extend the lease; True when a client asked to cancel the run."""
        async with self.database.write() as session:
            statement = (
                update(RunRow)
                .where(col(RunRow.id) == run_id, col(RunRow.lease_owner) == self.name,
                       col(RunRow.status) == RunStatus.RUNNING.value)
                .values(lease_expires_at=self._lease_end())
                .returning(col(RunRow.cancel_requested_at))
            )
            row = (await session.execute(statement)).first()
        if row is None:
            raise _LeaseLost(run_id)
        return row[0] is not None

    async def _cancel_requested(self, run_id: str) -> bool:
        async with self.database.read() as session:
            requested = (await session.execute(
                select(col(RunRow.cancel_requested_at)).where(col(RunRow.id) == run_id)
            )).scalar_one_or_none()
        return requested is not None

    async def recover_expired(self) -> int:
        """Runs whose worker stopped renewing its lease end in ERROR (or CANCELLED, when that
        was asked for), with a RunError that says so."""
        async with self.database.read() as session:
            expired = (await session.execute(
                select(col(RunRow.id)).where(col(RunRow.status) == RunStatus.RUNNING.value,
                                              col(RunRow.lease_expires_at) < utcnow())
            )).scalars().all()
        recovered = 0
        for run_id in expired:
            with contextlib.suppress(Conflict):
                async with self.database.write() as session:
                    await self._end_expired(session, run_id)
                recovered += 1
        self.recovered += recovered
        return recovered

    async def _end_expired(self, session: AsyncSession, run_id: str) -> None:
        run = await session.get(RunRow, run_id)
        if run is None or run.lease_expires_at is None or run.lease_expires_at >= utcnow():
            raise Conflict("the lease was renewed")
        if run.cancel_requested_at is not None:
            await transition(session, run_id, RunStatus.CANCELLED, held_by=run.lease_owner)
            return
        error = AgentError("lease_expired", "The worker executing this run stopped responding "
                           "and its lease expired.", {"worker": run.lease_owner})
        await write_error(session, run, error, held_by=run.lease_owner)

    async def forget_old_idempotency_keys(self) -> None:
        async with self.database.write() as session:
            await session.execute(delete(IdempotencyKeyRow).where(
                col(IdempotencyKeyRow.created_at) < utcnow() - IDEMPOTENCY_WINDOW))

    # -- executing -----------------------------------------------------------------------------

    async def _execute(self, run: RunRow) -> None:
        try:
            outcome = await self._outcome(run)
            if isinstance(outcome, AgentReply):
                outcome = storable(outcome, self.config.json_caps)
            try:
                await self._record(run, outcome)
            except (_LeaseLost, Conflict, asyncio.CancelledError):
                raise
            except Exception as error:
                if not isinstance(outcome, AgentReply):
                    raise
                log.error("the reply of run %s could not be written", run.id, exc_info=error)
                await self._record(run, unwritable(error))
        except (_LeaseLost, Conflict) as lost:
            log.warning("run %s was taken from this worker: %s", run.id, lost)
        except asyncio.CancelledError:
            await asyncio.shield(self._release(run.id))
            raise

    async def _record(self, run: RunRow, outcome: AgentReply | AgentError | None) -> None:
        async with self.database.write() as session:
            if isinstance(outcome, AgentReply):
                await write_reply(session, run, outcome, self.name)
            elif outcome is None:
                await transition(session, run.id, RunStatus.CANCELLED, held_by=self.name)
            else:
                await write_error(session, run, outcome, held_by=self.name)

    async def _release(self, run_id: str) -> None:
        with contextlib.suppress(Conflict, _LeaseLost):
            async with self.database.write() as session:
                await transition(session, run_id, RunStatus.PENDING, held_by=self.name,
                                 cancel_requested_at=None)

    async def _outcome(self, run: RunRow) -> AgentReply | AgentError | None:
        """The agent's reply, its error, or None when a client cancelled the run."""
        async with self.database.read() as session:
            agent_row = await session.get(AgentRow, run.agent_id)
            assert agent_row is not None
            request = await agent_request(session, run)
        try:
            agent = await self.agents.take(agent_row.id, agent_row.updated_at, agent_row.kind,
                                           agent_row.config)
        except (LookupError, ValueError) as error:
            return AgentError("agent_misconfigured", str(error))
        work = asyncio.create_task(agent.run(request))
        try:
            cancelled = await self._supervise(run.id, work)
        finally:
            try:
                if not work.done():
                    work.cancel()
                    await asyncio.wait({work})
            finally:
                await self.agents.give_back(agent)
        if cancelled:
            return None
        return self._result(work)

    async def _supervise(self, run_id: str, work: asyncio.Task[AgentReply]) -> bool:
        """Wait for the agent, renewing the lease; True when a client cancelled the run."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.agent_timeout_seconds
        renew_at = loop.time() + self.config.lease_seconds / 3
        while not work.done():
            await asyncio.wait({work}, timeout=CANCEL_CHECK_SECONDS)
            if work.done():
                break
            if loop.time() >= deadline:
                work.cancel()
                break
            if loop.time() >= renew_at:
                renew_at = loop.time() + self.config.lease_seconds / 3
                if await self._renew(run_id):
                    return True
            elif await self._cancel_requested(run_id):
                return True
        return False

    def _result(self, work: asyncio.Task[AgentReply]) -> AgentReply | AgentError:
        if work.cancelled():
            return AgentError("agent_timeout", "The agent did not finish within "
                              f"{self.config.agent_timeout_seconds:g} seconds.")
        error = work.exception()
        if error is None:
            return work.result()
        if isinstance(error, AgentError):
            return error
        log.error("agent failed", exc_info=error)
        return AgentError("agent_failed", f"The agent failed: {type(error).__name__}.")
