"""A streaming agent's run (runql.agents.protocol.Streams), written as it goes.

Two tasks: the pump reads the agent's stream into a Draft (memory only), and the run's own
task flushes the draft: every pending step in one write transaction (text appended to the
stored part, one MESSAGE_DELTA event per message with the text since the last flush, the run's
sequence bumped). Neither holds a database connection while the agent is silent.

Coalescing: a run flushes at most once every FLUSH_SECONDS (so at most once per message): the
first event after a quiet spell is flushed at once, those that follow within the interval wait
for its end and go together. At 50 tokens/s that is 20 flushes a second, not 50.

Stopping: on cancel (or a lost lease, or the agent's time running out) the pump is cancelled,
which closes the agent's stream (`aclose()`: a generator's `finally` closes its HTTP stream),
and waited for at most STOP_SECONDS; what was streamed until then is kept.
"""

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

from runql.agents.protocol import AgentError, StreamEvent
from runql.enums import RunStatus
from runql.lifecycle.conversation import finish_streamed, write_steps
from runql.lifecycle.draft import Draft
from runql.lifecycle.replies import unwritable
from runql.storage.database import Database
from runql.storage.tables import RunRow
from runql.text import JsonCaps

log = logging.getLogger("runql.executor")

FLUSH_SECONDS = 0.05
STOP_SECONDS = 1.0

Ending = RunStatus | AgentError  # SUCCESS, CANCELLED, or the error that ends the run in ERROR
Opener = Callable[[], AsyncIterator[StreamEvent]]


class StreamedRun:
    """One run of a streaming agent, from its first event to its end."""

    def __init__(self, database: Database, run: RunRow, worker: str, caps: JsonCaps) -> None:
        self.database = database
        self.run = run
        self.worker = worker
        self.draft = Draft(caps)
        self.flushes = 0
        self._wake = asyncio.Event()

    async def follow(
        self, open_stream: Opener, stop: asyncio.Event, seconds: float
    ) -> Ending | None:
        """Pump the stream and flush it until it ends (SUCCESS, or the agent's error), `stop`
        is set (None: the caller knows why) or `seconds` pass (`agent_timeout`). The
        pump has stopped when this returns; the last pending steps are for `finish`."""
        pump = asyncio.create_task(self._pump(open_stream), name=f"runql-stream-{self.run.id}")
        stopped = asyncio.ensure_future(stop.wait())
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
                    flushed = now
                    await self.flush()
                    continue
                await self._idle(pump, stopped, until=flushed + FLUSH_SECONDS, deadline=deadline)
            return None if stop.is_set() else _ending(pump)
        finally:
            stopped.cancel()
            await _halt(pump)

    async def _idle(
        self,
        pump: asyncio.Task[None],
        stopped: "asyncio.Future[Any]",
        *,
        until: float,
        deadline: float,
    ) -> None:
        """Until the pump ends, `stop` is set, or there is something to flush: with steps
        pending, their flush time; without, the pump's next event."""
        now = asyncio.get_running_loop().time()
        waits: set[asyncio.Future[Any]] = {pump, stopped}
        woken = None
        if self.draft.pending:
            seconds = min(until, deadline) - now
        else:
            self._wake.clear()
            woken = asyncio.ensure_future(self._wake.wait())
            waits.add(woken)
            seconds = deadline - now
        try:
            await asyncio.wait(waits, timeout=max(seconds, 0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if woken is not None:
                woken.cancel()

    async def _pump(self, open_stream: Opener) -> None:
        events = open_stream()
        try:
            async for event in events:
                self.draft.add(event)
                self._wake.set()
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def flush(self) -> None:
        """Every pending step, in one transaction."""
        steps = self.draft.take()
        async with self.database.write() as session:
            await write_steps(session, self.run, self.draft, steps, self.worker)
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
