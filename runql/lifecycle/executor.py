"""The executor: runs claimed in batches and executed at once, up to `concurrency` in flight per
process; their leases renewed and their cancel requests read for all of them at once (the
keeper); expired leases (a worker that died) recovered; shutdown releases what it holds.

Agents are mostly waiting (a language model, a webhook), so many runs are in flight per process
with one task each; the database sees a few statements per interval whatever that number is: a
claim per batch, one renewal of every lease, one read of cancel requests. Runs of one thread
still go one at a time, in order (the claim's conditions, and the thread's row).

A claim moves its whole batch in a few statements (transitions.transition_many), and the
batch's agents and requests are read at once (conversation.agent_requests). An agent that
answers once has its reply written when it comes; one that streams has it written as it
streams (runql.lifecycle.streaming). Either way a run's end is group-committed: the outcomes
of runs that end together share a transaction (storage.writes.GroupCommit), their rows
inserted one statement a table and the runs moved at once (conversation.write_outcomes,
conversation.finish_succeeded); should that transaction fail, each run is written alone.
"""

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, exists, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from runql.agents.instances import AgentInstances
from runql.agents.protocol import Agent, AgentError, AgentReply, AgentRequest, Streams
from runql.agents.registry import AgentRegistry
from runql.bus.hub import Hub, Notice
from runql.enums import MessageGroupStatus, RunStatus
from runql.errors import Conflict
from runql.lifecycle.conversation import (
    Outcome,
    ReplySteps,
    agent_request,
    agent_requests,
    finish_streamed,
    finish_succeeded,
    settle_reply,
    write_error,
    write_outcomes,
)
from runql.lifecycle.draft import Step
from runql.lifecycle.replies import storable, unwritable
from runql.lifecycle.runs import DEFAULT_JSON_CAPS, IDEMPOTENCY_WINDOW
from runql.lifecycle.streaming import Ending, FlushBatcher, StreamedRun
from runql.lifecycle.transitions import lock_in_id_order, transition, transition_many
from runql.settings import Settings, default_in_flight
from runql.storage.database import Database
from runql.storage.events import RunEvent
from runql.storage.tables import AgentRow, IdempotencyKeyRow, RunRow, ThreadRow
from runql.storage.types import utcnow
from runql.storage.writes import GroupCommit
from runql.text import JsonCaps

log = logging.getLogger("runql.executor")

CANCEL_CHECK_SECONDS = 0.2  # how often the keeper reads the cancel requests of runs in flight
CLAIM_ATTEMPTS = 3
CLAIM_BATCH = 50  # runs claimed in one transaction at most
KEEPER_BATCH = 500  # run ids per statement of the keeper
OUTCOME_LANES = 2  # outcome batches in their transactions at once, on PostgreSQL
SETTLE_SECONDS = 2.0  # how long stop() lets idle tasks finish their statement
RUN_TASK = "runql-run-"  # the name of the claimer's tasks, each executing one run


@dataclass(frozen=True)
class ExecutorConfig:
    concurrency: int = field(default_factory=default_in_flight)
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    agent_timeout_seconds: float = 300.0
    shutdown_grace_seconds: float = 10.0
    json_caps: JsonCaps = DEFAULT_JSON_CAPS

    @classmethod
    def from_settings(cls, settings: Settings) -> "ExecutorConfig":
        return cls(
            concurrency=settings.workers,
            lease_seconds=settings.lease_seconds,
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
        # One row-value comparison, not `<` or `=` and `<`: SQLite then searches the thread's
        # runs by ix_runs_thread_created, rather than every pending run by status (0.5 s a
        # claim with 2,000 pending).
        tuple_(older.created_at, older.id) < tuple_(run.created_at, run.id),
    )


def _oldest_pending_in_thread() -> Any:
    """Whether the run is its thread's oldest pending run, as PostgreSQL is asked: the oldest
    pending run of every thread found once (DISTINCT ON, one sort of the pending runs), then
    matched (by hashing: _HASHED_CLAIM). Asked as `_older_pending_in_thread` (or as a
    subquery per run), PostgreSQL's planner, which sees a fresh runs table as nearly empty,
    probed every pending run against every other through a status index: 1.3 s a claim with
    2,000 pending, claims at 100 runs/s in a burst."""
    older: Any = aliased(RunRow)
    oldest = (
        select(older.id)
        .ext(distinct_on(older.thread_id))
        .where(older.status == RunStatus.PENDING.value)
        .order_by(older.thread_id, older.created_at, older.id)
    )
    return col(RunRow.id).in_(oldest)


_Read = tuple[AgentRow, AgentRequest]  # a run's agent and what it is given, as read


# The runs a claim may take, oldest first: pending, of a thread executing nothing, the oldest
# pending of their thread (each database asked the way its planner answers fast). PostgreSQL
# skips rows other workers hold.
def _candidates(oldest: Any) -> Any:
    return (
        select(col(RunRow.id))
        .join(ThreadRow, col(ThreadRow.id) == col(RunRow.thread_id))
        .where(
            col(RunRow.status) == RunStatus.PENDING.value,
            col(ThreadRow.active_run_id).is_(None),
            oldest,
        )
        .order_by(col(RunRow.created_at), col(RunRow.id))
        .limit(bindparam("limit"))
    )


_CANDIDATES = _candidates(~_older_pending_in_thread())
# The claim's transaction on PostgreSQL joins by hashing: with a LIMIT, a planner that sees a
# fresh runs table as nearly empty otherwise matched every pending run against the set of
# oldest ones row by row (EXPLAIN ANALYZE, 2,000 pending: 349 ms against 11 ms hashed).
_HASHED_CLAIM = text("SET LOCAL enable_nestloop = off")
_CANDIDATES_LOCKED = _candidates(_oldest_pending_in_thread()).with_for_update(
    skip_locked=True, of=[RunRow, ThreadRow]
)


@dataclass(frozen=True, slots=True)
class _Finish:
    """A streamed run's end, group-committed with other runs' outcomes: its last steps, how
    it ends, and its draft's state when it was submitted (each attempt, in a batch and then
    alone should the batch fail, starts from that state)."""

    streamed: StreamedRun
    ending: Ending
    steps: list[Step]
    stored: tuple[bool, str | None]

    @classmethod
    def of(cls, streamed: StreamedRun, ending: Ending) -> "_Finish":
        draft = streamed.draft
        return cls(streamed, ending, draft.take(), (draft.group_stored, draft.actor_id))

    @property
    def run(self) -> RunRow:
        return self.streamed.run

    def restore(self) -> None:
        draft = self.streamed.draft
        draft.group_stored, draft.actor_id = self.stored

    async def write(self, session: AsyncSession, worker: str, actors: dict[str, str]) -> RunRow:
        draft = self.streamed.draft
        return await finish_streamed(
            session, self.run, draft, worker, self.ending, list(self.steps), actors
        )


_Ended = tuple[RunRow, Outcome] | _Finish  # what the executor writes when a run ends


class _LeaseLost(Exception):
    pass


@dataclass(eq=False)
class _Flight:
    """A run this process executes, as the keeper sees it."""

    run_id: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # set on cancel or lost lease
    cancelled: bool = False
    lost: bool = False

    def end(self, *, cancelled: bool = False, lost: bool = False) -> None:
        self.cancelled = self.cancelled or cancelled
        self.lost = self.lost or lost
        self.stop.set()


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[start : start + KEEPER_BATCH] for start in range(0, len(ids), KEEPER_BATCH)]


class Executor:
    def __init__(
        self,
        database: Database,
        registry: AgentRegistry,
        config: ExecutorConfig | None = None,
        *,
        name: str | None = None,
        hub: Hub | None = None,
    ) -> None:
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
        self._freed = asyncio.Event()  # a run in flight ended: there may be room to claim
        self._flights: dict[str, _Flight] = {}
        self._keeper: asyncio.Task[None] | None = None
        self.batcher = FlushBatcher(database)  # the writes of its streaming runs, batched
        self._actors: dict[str, str] = {}  # agent -> its actor, as committed
        # The outcomes of runs that end together share a transaction: one commit for many.
        self._outcomes: GroupCommit[_Ended, RunRow] = GroupCommit(
            database, self._write_outcomes, lanes=1 if database.is_sqlite else OUTCOME_LANES
        )

    # -- running ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.hub is not None:
            self.hub.observe(self._on_notice)
        else:
            self.database.on_commit(self._on_commit)
        self._tasks = [
            asyncio.create_task(self._claimer(), name="runql-claimer"),
            asyncio.create_task(self._housekeeping(), name="runql-housekeeping"),
        ]

    @property
    def running(self) -> bool:
        """Started, and neither its claimer nor its housekeeping has ended."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    async def stop(self) -> None:
        """Stop claiming, let running agents finish within the grace period, then release the
        runs still held (back to PENDING, for another worker) and close the agents."""
        self._stopping = True
        self._wake.set()
        self._freed.set()  # a full claimer waits for room: it ends now
        self._stopped.set()
        if self._executing:
            await asyncio.wait(set(self._executing), timeout=self.config.shutdown_grace_seconds)
        # The claimer, housekeeping and the keeper end by themselves once their statement is
        # done: one cancelled while it opens a database connection could leave that socket
        # unclosed. Runs still in flight are cancelled, and release their run.
        background = [*self._tasks, *([self._keeper] if self._keeper else [])]
        if background:
            await asyncio.wait(background, timeout=SETTLE_SECONDS)
        launched = [task for task in self._executing if task.get_name().startswith(RUN_TASK)]
        for task in (*background, *launched):
            task.cancel()
        await asyncio.gather(*background, *launched, return_exceptions=True)
        await self.batcher.drain(SETTLE_SECONDS)  # flushes the cancelled runs left to it
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

    async def _claimer(self) -> None:
        """Claims runs while there is room for them, a batch at a time, and starts each; waits
        for a new run (or `poll_seconds`) when none is left, and for room when it is full."""
        while not self._stopping:
            room = self.config.concurrency - len(self._executing)
            if room <= 0:
                self._freed.clear()
                await self._freed.wait()
                continue
            wanted = min(room, CLAIM_BATCH)
            self._wake.clear()  # a run created from now on wakes the wait below
            try:
                runs = await self.claim_many(wanted)
            except Exception:
                log.exception("claiming runs failed; the claimer carries on")
                runs = []
            read = await self._read_many(runs)
            for run in runs:
                self._launch(run, read.get(run.id))
            if len(runs) < wanted and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)

    def _launch(self, run: RunRow, read: _Read | None) -> None:
        task = asyncio.create_task(self._execute(run, read), name=f"{RUN_TASK}{run.id}")
        self._executing.add(task)
        task.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._executing.discard(task)
        self._freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("executing a run failed", exc_info=task.exception())

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
        thread go one at a time, in order)."""
        found = await self.claim_many(1)
        return found[0] if found else None

    async def claim_many(self, limit: int) -> list[RunRow]:
        """Take up to `limit` such runs, oldest first, in one transaction. A select picks them
        (skipping rows other workers hold, on PostgreSQL); the state machine's conditional
        updates of each run and of its thread make sure no other worker took either first: if
        one did, the batch is rolled back and picked again."""
        for _ in range(CLAIM_ATTEMPTS):
            try:
                return await self._claim_once(limit)
            except Conflict:
                continue  # another worker won a run or its thread: pick again
        return []

    async def _claim_once(self, limit: int) -> list[RunRow]:
        async with self.database.write() as session:
            candidates = _CANDIDATES if self.database.is_sqlite else _CANDIDATES_LOCKED
            if not self.database.is_sqlite:
                await session.execute(_HASHED_CLAIM)
            run_ids = (await session.execute(candidates, {"limit": limit})).scalars().all()
            return await transition_many(
                session,
                run_ids,
                RunStatus.RUNNING,
                lease_owner=self.name,
                lease_expires_at=self._lease_end(),
            )

    # -- the keeper: every run in flight, a few statements per interval -------------------------

    def _fly(self, run_id: str) -> _Flight:
        flight = self._flights[run_id] = _Flight(run_id)
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep(), name="runql-keeper")
        return flight

    async def _keep(self) -> None:
        """While runs are in flight: reads their cancel requests every CANCEL_CHECK_SECONDS and
        renews their leases every third of a lease, each in one statement per KEEPER_BATCH runs.
        A run whose lease was lost (recovered by another worker) or whose cancel was asked for
        is stopped through its flight."""
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + self.config.lease_seconds / 3
        while self._flights:
            await asyncio.sleep(CANCEL_CHECK_SECONDS)
            flights = dict(self._flights)
            if not flights:
                break
            try:
                if loop.time() >= renew_at:
                    renew_at = loop.time() + self.config.lease_seconds / 3
                    held = await self._renew(list(flights))
                    for run_id, flight in flights.items():
                        if run_id not in held:
                            flight.end(lost=True)
                        elif held[run_id]:
                            flight.end(cancelled=True)
                else:
                    for run_id in await self._cancels_requested(list(flights)):
                        flights[run_id].end(cancelled=True)
            except Exception:
                log.exception(
                    "renewing leases or reading cancel requests failed; the keeper carries on"
                )

    async def _renew(self, run_ids: list[str]) -> dict[str, bool]:
        """Extends the leases this worker still holds: for each, whether a client asked to
        cancel the run."""
        held: dict[str, bool] = {}
        lease_end = self._lease_end()
        for chunk in _chunks(run_ids):
            async with self.database.write() as session:
                await lock_in_id_order(session, chunk)
                statement = (
                    update(RunRow)
                    .where(
                        col(RunRow.id).in_(chunk),
                        col(RunRow.lease_owner) == self.name,
                        col(RunRow.status) == RunStatus.RUNNING.value,
                    )
                    .values(lease_expires_at=lease_end)
                    .returning(col(RunRow.id), col(RunRow.cancel_requested_at))
                    .execution_options(synchronize_session=False)
                )
                for run_id, requested in (await session.execute(statement)).all():
                    held[run_id] = requested is not None
        return held

    async def _cancels_requested(self, run_ids: list[str]) -> list[str]:
        found: list[str] = []
        for chunk in _chunks(run_ids):
            async with self.database.read() as session:
                found.extend(
                    (
                        await session.execute(
                            select(col(RunRow.id)).where(
                                col(RunRow.id).in_(chunk),
                                col(RunRow.cancel_requested_at).is_not(None),
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
        return found

    async def recover_expired(self) -> int:
        """Runs whose worker stopped renewing its lease end in ERROR (or CANCELLED, when that
        was asked for), with a RunError that says so."""
        async with self.database.read() as session:
            expired = (
                (
                    await session.execute(
                        select(col(RunRow.id)).where(
                            col(RunRow.status) == RunStatus.RUNNING.value,
                            col(RunRow.lease_expires_at) < utcnow(),
                        )
                    )
                )
                .scalars()
                .all()
            )
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
            await settle_reply(session, run_id, MessageGroupStatus.CANCELLED)
            await transition(session, run_id, RunStatus.CANCELLED, held_by=run.lease_owner)
            return
        error = AgentError(
            "lease_expired",
            "The worker executing this run stopped responding and its lease expired.",
            {"worker": run.lease_owner},
        )
        await write_error(session, run, error, held_by=run.lease_owner)

    async def forget_old_idempotency_keys(self) -> None:
        async with self.database.write() as session:
            await session.execute(
                delete(IdempotencyKeyRow).where(
                    col(IdempotencyKeyRow.created_at) < utcnow() - IDEMPOTENCY_WINDOW
                )
            )

    # -- executing -----------------------------------------------------------------------------

    async def _execute(self, run: RunRow, read: _Read | None = None) -> None:
        flight = self._fly(run.id)  # from now on the keeper renews its lease
        try:
            prepared = await self._prepare(run, read)
            if isinstance(prepared, AgentError):
                await self._record(run, prepared)
                return
            agent, request = prepared
            try:
                if isinstance(agent, Streams):
                    await self._stream(run, agent, request, flight)
                else:
                    await self._answer(run, agent, request, flight)
            finally:
                await self.agents.give_back(agent)
        except (_LeaseLost, Conflict) as lost:
            log.warning("run %s was taken from this worker: %s", run.id, lost)
        except asyncio.CancelledError:
            await asyncio.shield(self._release(run.id))
            raise
        finally:
            self._flights.pop(run.id, None)

    async def _read_many(self, runs: list[RunRow]) -> dict[str, _Read]:
        """Each run's agent and what it is given, read for all at once; none if that fails
        (each run then reads its own, and fails alone)."""
        if not runs:
            return {}
        try:
            async with self.database.read() as session:
                wanted = {run.agent_id for run in runs}
                agents = {
                    row.id: row
                    for row in (
                        await session.execute(select(AgentRow).where(col(AgentRow.id).in_(wanted)))
                    ).scalars()
                }
                requests = await agent_requests(session, runs)
        except Exception:
            log.exception("reading a batch of runs failed; each run reads its own")
            return {}
        return {run.id: (agents[run.agent_id], requests[run.id]) for run in runs}

    async def _prepare(
        self, run: RunRow, read: _Read | None = None
    ) -> tuple[Agent, AgentRequest] | AgentError:
        """The run's agent and what it is given (`read` already, or read now), or the error
        that ends the run."""
        if read is None:
            async with self.database.read() as session:
                agent_row = await session.get(AgentRow, run.agent_id)
                assert agent_row is not None
                read = agent_row, await agent_request(session, run)
        agent_row, request = read
        try:
            agent = await self.agents.take(
                agent_row.id, agent_row.updated_at, agent_row.kind, agent_row.config
            )
        except (LookupError, ValueError) as error:
            return AgentError("agent_misconfigured", str(error))
        return agent, request

    async def _answer(
        self, run: RunRow, agent: Agent, request: AgentRequest, flight: _Flight
    ) -> None:
        """An agent that answers once: its reply written when it comes."""
        outcome = await self._outcome(agent, request, flight)
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

    async def _stream(
        self, run: RunRow, agent: Streams, request: AgentRequest, flight: _Flight
    ) -> None:
        """A streaming agent: its reply written as it goes (runql.lifecycle.streaming)."""
        streamed = StreamedRun(self.database, run, self.name, self.config.json_caps, self.batcher)
        try:
            ending = await streamed.follow(
                lambda: agent.stream(request), flight.stop, self.config.agent_timeout_seconds
            )
            if ending is not None and streamed.draft.pending:
                # The last deltas as promptly as the others: the run's end, a heavier write
                # committed with other runs' outcomes, comes after them.
                await streamed.flush()
        except (Conflict, asyncio.CancelledError):
            raise
        except Exception as error:
            await streamed.fail(error)
            return
        if ending is None:
            if flight.lost:
                raise _LeaseLost(run.id)
            ending = RunStatus.CANCELLED
        await self._outcomes.submit(_Finish.of(streamed, ending))

    async def _record(self, run: RunRow, outcome: Outcome) -> None:
        """The run's outcome, written with those of other runs that end meanwhile (group
        commit); should the batch fail, each run is written again alone, so a run whose lease
        was lost fails by itself (Conflict)."""
        await self._outcomes.submit((run, outcome))

    async def _write_outcomes(
        self, session: AsyncSession, ended: Sequence[_Ended]
    ) -> list[RunRow | Exception]:
        answered = [item for item in ended if isinstance(item, tuple)]
        written = await write_outcomes(session, answered, self.name, self._actors)
        stored = {run.id: row for (run, _), row in zip(answered, written, strict=True)}
        finishes = sorted(
            (item for item in ended if isinstance(item, _Finish)), key=lambda f: f.run.id
        )
        for finish in finishes:
            finish.restore()
        succeeded = [f for f in finishes if f.ending is RunStatus.SUCCESS]
        moved = await finish_succeeded(
            session,
            [ReplySteps(f.run, f.streamed.draft, list(f.steps)) for f in succeeded],
            self.name,
            self._actors,
        )
        stored.update(zip([f.run.id for f in succeeded], moved, strict=True))
        for finish in finishes:
            if finish.ending is not RunStatus.SUCCESS:
                stored[finish.run.id] = await finish.write(session, self.name, self._actors)
        return [stored[item[0].id if isinstance(item, tuple) else item.run.id] for item in ended]

    async def _release(self, run_id: str) -> None:
        """Back to PENDING for another worker; a reply it was streaming stays, CANCELLED, and
        the run's next attempt writes a new one."""
        with contextlib.suppress(Conflict, _LeaseLost):
            async with self.database.write() as session:
                await settle_reply(session, run_id, MessageGroupStatus.CANCELLED)
                await transition(
                    session,
                    run_id,
                    RunStatus.PENDING,
                    held_by=self.name,
                    cancel_requested_at=None,
                    message_group_id=None,
                )

    async def _outcome(
        self, agent: Agent, request: AgentRequest, flight: _Flight
    ) -> AgentReply | AgentError | None:
        """The agent's reply, its error, or None when a client cancelled the run."""
        work = asyncio.create_task(agent.run(request))
        try:
            cancelled = await self._supervise(flight, work)
        finally:
            if not work.done():
                work.cancel()
                await asyncio.wait({work})
        if cancelled:
            return None
        return self._result(work)

    async def _supervise(self, flight: _Flight, work: asyncio.Task[AgentReply]) -> bool:
        """Wait for the agent while the keeper holds the run's lease; True when a client
        cancelled the run. Raises _LeaseLost if another worker took the run."""
        stopped = asyncio.ensure_future(flight.stop.wait())
        try:
            await asyncio.wait(
                {work, stopped},
                timeout=self.config.agent_timeout_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopped.cancel()
        if work.done():
            return False
        if flight.lost:
            raise _LeaseLost(flight.run_id)
        if flight.cancelled:
            return True
        work.cancel()  # out of time: _result says so
        return False

    def _result(self, work: asyncio.Task[AgentReply]) -> AgentReply | AgentError:
        if work.cancelled():
            return AgentError(
                "agent_timeout",
                f"The agent did not finish within {self.config.agent_timeout_seconds:g} seconds.",
            )
        error = work.exception()
        if error is None:
            return work.result()
        if isinstance(error, AgentError):
            return error
        log.error("agent failed", exc_info=error)
        return AgentError("agent_failed", f"The agent failed: {type(error).__name__}.")
