"""A streaming agent's run (runql.agents.protocol.Streams), written as it goes.

Two tasks: the pump reads the agent's stream into a Draft (memory only), and the run's own
task flushes the draft: every pending step in one write transaction (text appended to the
stored part, one MESSAGE_DELTA event per message with the text since the last flush, the run's
sequence bumped). Neither holds a database connection while the agent is silent.

Coalescing: a run flushes at most once every FLUSH_SECONDS (so at most once per message): the
first event after a quiet spell is flushed at once, those that follow within the interval wait
for its end and go together. At 50 tokens/s that is 20 flushes a second, not 50. The interval
counts from the previous flush's commit, so a process whose flushes wait (for the database, or
for a busy event loop) flushes less often, in larger deltas, rather than at once again: every
event it writes is one more to deliver to each of its subscribers.

Batching: flushes of every streaming run of a process share transactions (FlushBatcher): a
flush asked for while none is being written is written at once; those asked for meanwhile
wait for it to commit and then go together in the next, in a few statements whatever their
number (conversation.write_flushes: one bumps every run's sequence, one inserts the events
and the steps' rows, one appends the texts). So a process makes about as many commits and
statements as one run would, however many runs stream, and each still gets its own events.
On PostgreSQL a batch is ONE statement in autocommit on the raw pool, its own transaction
(conversation.write_flushes_at_once: the bump, the inserts, the NOTIFYs and the appends in
data-modifying WITH clauses): one round trip where a session's transaction took five (BEGIN,
three statements, COMMIT), each waiting its turn of a busy event loop. It serves every batch
but one holding the first flush of a run whose agent's actor this process has not looked up
yet, which a session's transaction writes.
(On a SQLite file the transaction stays on the event loop's sessions: written in one call on
the database's writer thread (Database.write_on_thread), the flushes got faster but the
thread's share of the interpreter doubled the token latency of bench/stream.py's saturated
gateway, p50 and p99, at 100 runs x 10 sockets.)

Ending: what is still pending when the stream ends is flushed as the rest was (the executor
does it), and the run's end (its status, its message group settled) is written after it, with
other runs' outcomes: the last tokens do not wait for that heavier write. bench/stream.py's
streams, which end together, had their last tokens at p99 171 ms when they waited for it, 105.

Stopping: on cancel (or a lost lease, or the agent's time running out) the pump is cancelled,
which closes the agent's stream (`aclose()`: a generator's `finally` closes its HTTP stream),
and waited for at most STOP_SECONDS; what was streamed until then is kept.
"""

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from runql.agents.protocol import AgentError, StreamEvent
from runql.enums import RunStatus
from runql.lifecycle.conversation import (
    ReplySteps,
    agent_actor,
    finish_streamed,
    write_flushes,
    write_flushes_at_once,
)
from runql.lifecycle.draft import Draft, Step
from runql.lifecycle.replies import unwritable
from runql.storage.database import Database
from runql.storage.tables import RunRow
from runql.text import JsonCaps

log = logging.getLogger("runql.executor")

FLUSH_SECONDS = 0.05
STOP_SECONDS = 1.0

Ending = RunStatus | AgentError  # SUCCESS, CANCELLED, or the error that ends the run in ERROR
Opener = Callable[[], AsyncIterator[StreamEvent]]


@dataclass(eq=False)
class _Flush:
    streamed: "StreamedRun"
    steps: list[Step]
    done: "asyncio.Future[None]"

    def replied(self) -> ReplySteps:
        return ReplySteps(self.streamed.run, self.streamed.draft, self.steps)


class FlushBatcher:
    """Writes the flushes of a process's streaming runs: those asked for while a transaction is
    being written go together in the next one. A batch that fails is written again one run at a
    time, so a run whose lease was lost (Conflict) fails alone."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.transactions = 0
        self.actors: dict[str, str] = {}  # agents' actors, remembered by conversation.agent_actor
        self._waiting: list[_Flush] = []
        self._writing: asyncio.Task[None] | None = None
        self._looking: dict[str, asyncio.Future[None]] = {}  # know_actor's, by agent

    async def know_actor(self, agent_id: str) -> None:
        """On PostgreSQL, the actor an agent's replies are written as, in `actors` before its
        run's first flush: looked up, or made for the agent's first reply ever, once a process
        and agent (runs that start together share the lookup). A batch holding the first flush
        of an agent not in `actors` is written through a session's transaction, five round
        trips and a bump by a CASE of one branch a run; with it known, in one statement
        (write_flushes_at_once). Should the lookup fail, the first flush looks again."""
        if self.database.is_sqlite or agent_id in self.actors:
            return
        looking = self._looking.get(agent_id)
        if looking is None:
            looking = self._looking[agent_id] = asyncio.ensure_future(self._look_up(agent_id))
            looking.add_done_callback(lambda _: self._looking.pop(agent_id, None))
        await asyncio.shield(looking)

    async def _look_up(self, agent_id: str) -> None:
        try:
            async with self.database.write() as session:
                actor_id = await agent_actor(session, agent_id, self.actors)
        except Exception:  # (the run's first flush meets the same, and reports it)
            log.warning("the actor of agent %s was not looked up", agent_id, exc_info=True)
            return
        self.actors[agent_id] = actor_id  # committed

    async def drain(self, seconds: float) -> None:
        """Until the batch being written and the actors being looked up are done, or cancelled
        after `seconds`: a run cancelled while its flush is written leaves the writing to this
        batcher (its steps are written anyway), and at shutdown no such write may be left
        holding a database connection when the event loop ends."""
        pending = [
            task for task in (self._writing, *self._looking.values()) if task and not task.done()
        ]
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=seconds)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def flush(self, streamed: "StreamedRun", steps: list[Step]) -> None:
        """Once `steps` are committed; raises what writing them raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)  # its error is its run's, which may have left
        self._waiting.append(_Flush(streamed, steps, done))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write(), name="runql-stream-flushes")
        await asyncio.shield(done)  # a run cancelled meanwhile: its steps are written anyway

    async def _write(self) -> None:
        while self._waiting:
            # In run id order, the order their rows are locked in (transitions.lock_in_id_order).
            batch = sorted(self._waiting, key=lambda flush: flush.streamed.run.id)
            self._waiting = []
            try:
                await self._together(batch)
            except Exception:
                for flush in batch:
                    await self._alone(flush)
                continue
            for flush in batch:
                _settle(flush.done, None)

    async def _together(self, batch: list[_Flush]) -> None:
        stored = [(f.streamed.draft.group_stored, f.streamed.draft.actor_id) for f in batch]
        try:
            await self._transaction(batch)
        except BaseException:
            for flush, (group_stored, actor_id) in zip(batch, stored, strict=True):
                flush.streamed.draft.group_stored = group_stored
                flush.streamed.draft.actor_id = actor_id
            raise

    async def _alone(self, flush: _Flush) -> None:
        try:
            await self._transaction([flush])
        except Exception as error:
            _settle(flush.done, error)
        else:
            _settle(flush.done, None)

    async def _transaction(self, batch: list[_Flush]) -> None:
        """The batch's flushes in one transaction."""
        by_worker = [
            (worker, [f.replied() for f in batch if f.streamed.worker == worker])
            for worker in sorted({f.streamed.worker for f in batch})
        ]
        if len(by_worker) == 1:  # on PostgreSQL, one statement in autocommit where it serves
            [(worker, flushes)] = by_worker
            if await write_flushes_at_once(self.database, flushes, worker, self.actors):
                self.transactions += 1
                return
        async with self.database.write() as session:
            for worker, flushes in by_worker:
                await write_flushes(session, flushes, worker, self.actors)
        self.transactions += 1


def _retrieve(done: "asyncio.Future[None]") -> None:
    if not done.cancelled():
        done.exception()


def _settle(done: "asyncio.Future[None]", error: Exception | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


class StreamedRun:
    """One run of a streaming agent, from its first event to its end."""

    def __init__(
        self,
        database: Database,
        run: RunRow,
        worker: str,
        caps: JsonCaps,
        batcher: FlushBatcher | None = None,
    ) -> None:
        self.database = database
        self.run = run
        self.worker = worker
        self.draft = Draft(caps)
        self.flushes = 0
        self.batcher = batcher or FlushBatcher(database)
        self._waiter: asyncio.Future[None] | None = None  # _idle's
        self._for_event = False  # whether _idle waits for the pump's next event

    async def follow(
        self, open_stream: Opener, stop: asyncio.Event, seconds: float
    ) -> Ending | None:
        """Pump the stream and flush it until it ends (SUCCESS, or the agent's error), `stop`
        is set (None: the caller knows why) or `seconds` pass (`agent_timeout`). The
        pump has stopped when this returns; the last pending steps are for `finish`."""
        await self.batcher.know_actor(self.run.agent_id)
        pump = asyncio.create_task(self._pump(open_stream), name=f"runql-stream-{self.run.id}")
        stopped = asyncio.ensure_future(stop.wait())
        pump.add_done_callback(self._rouse)
        stopped.add_done_callback(self._rouse)
        loop = asyncio.get_running_loop()
        deadline, flushed = loop.time() + seconds, -math.inf
        try:
            while not pump.done() and not stop.is_set():
                now = loop.time()
                if now >= deadline:
                    return AgentError(
                        "agent_timeout", f"The agent did not finish within {seconds:g} seconds."
                    )
                if self.draft.pending and now >= flushed + FLUSH_SECONDS:
                    await self.flush()
                    flushed = loop.time()  # the interval counts from the commit
                    continue
                await self._idle(until=flushed + FLUSH_SECONDS, deadline=deadline)
            return None if stop.is_set() else _ending(pump)
        finally:
            stopped.cancel()
            await _halt(pump)

    async def _idle(self, *, until: float, deadline: float) -> None:
        """Until the pump ends, `stop` is set, or there is something to flush: with steps
        pending, their flush time; without, the pump's next event. One future and one timer a
        wait (asyncio.wait and a task for an Event's wait cost several times that, at every
        flush of every run)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        self._for_event = not self.draft.pending
        timer = loop.call_at(deadline if self._for_event else min(until, deadline), self._rouse)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
            self._for_event = False

    def _rouse(self, *_: object) -> None:
        """Ends `_idle`'s wait (the pump's end, `stop`, its timer, or the event it waits for)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _pump(self, open_stream: Opener) -> None:
        events = open_stream()
        try:
            async for event in events:
                self.draft.add(event)
                if self._for_event:
                    self._rouse()
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def flush(self) -> None:
        """Every pending step, in one transaction (which other runs' flushes may share)."""
        await self.batcher.flush(self, self.draft.take())
        self.flushes += 1

    async def finish(self, ending: Ending) -> RunRow:
        """The last flush and the run's end, in one transaction."""
        async with self.database.write() as session:
            return await finish_streamed(session, self.run, self.draft, self.worker, ending)

    async def fail(self, error: Exception) -> RunRow:
        """A flush failed (not for a lost lease): the run ends in ERROR, keeping what was
        stored before; the steps of that flush are dropped."""
        log.error("the reply of run %s could not be written", self.run.id, exc_info=error)
        self.draft.take()
        return await self.finish(unwritable(error))


def _ending(pump: asyncio.Task[None]) -> Ending:
    error = pump.exception()
    if error is None:
        return RunStatus.SUCCESS
    if isinstance(error, AgentError):
        return error
    log.error("agent failed", exc_info=error)
    return AgentError("agent_failed", f"The agent failed: {type(error).__name__}.")


async def _halt(pump: asyncio.Task[None]) -> None:
    """Cancel the pump (which closes the agent's stream) and wait STOP_SECONDS at most."""
    if not pump.done():
        pump.cancel()
        await asyncio.wait({pump}, timeout=STOP_SECONDS)
    if not pump.done():
        log.warning("a streaming agent ignored its cancellation for %g s", STOP_SECONDS)
    elif not pump.cancelled():
        pump.exception()  # retrieved: _ending reported it, or nobody needs it
