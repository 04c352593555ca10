"""Reads that every subscriber of a run needs at the same moment, made once per process.

When a change to a run wakes its N subscribers, each wants the run's events after the same
sequence number, and the run as it is now. Reading those N times would make fan-out cost N
queries; here the first reader queries and the others share its result. A shared result is
only served to a subscriber it satisfies: it must reach the sequence number of the notice
that woke it (results are prefixes of the log, so nothing is skipped).
"""

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from runql.storage.database import Database
from runql.storage.events import events_after
from runql.storage.reads import rows_by_id
from runql.storage.tables import RunEventRow, RunRow

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    reaches: int
    value: V


def _retrieve(task: "asyncio.Task[Any]") -> None:
    """A failed read whose callers all left: its error was theirs, and nobody's now."""
    if not task.cancelled():
        task.exception()


class _Shared(Generic[K, V]):
    """Single-flight reads with a small LRU of their results."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._done: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._flying: dict[K, asyncio.Task[_Entry[V]]] = {}

    async def get(
        self, key: K, reaching: int | None, read: Callable[[], Awaitable[tuple[int, V]]]
    ) -> V:
        """The value for `key`, from a read that reached `reaching` at least; None forces a
        read that starts now."""
        if reaching is None:
            reaches, value = await read()
            self._remember(key, _Entry(reaches, value))
            return value
        entry = self._done.get(key)
        if entry is not None and entry.reaches >= reaching:
            self._done.move_to_end(key)
            return entry.value
        flying = self._flying.get(key)
        if flying is None:  # the read is a task of its own: a caller that leaves (its socket
            # closed) does not take it, or a cancellation, to the others waiting for it
            flying = self._flying[key] = asyncio.get_running_loop().create_task(
                self._read(key, read)
            )
            flying.add_done_callback(_retrieve)
        entry = await asyncio.shield(flying)
        if entry.reaches >= reaching:
            return entry.value
        return await self.get(key, reaching, read)

    async def _read(self, key: K, read: Callable[[], Awaitable[tuple[int, V]]]) -> _Entry[V]:
        try:
            reaches, value = await read()
        finally:
            del self._flying[key]
        entry = _Entry(reaches, value)
        self._remember(key, entry)
        return entry

    def _remember(self, key: K, entry: _Entry[V]) -> None:
        self._done[key] = entry
        self._done.move_to_end(key)
        while len(self._done) > self._max:
            self._done.popitem(last=False)


class _Fresh(Generic[K, V]):
    """Reads that must start after their caller asked (a subscriber's first read, which must
    see everything committed before it subscribed). Callers that ask while a read of the same
    key is under way wait for the next one, which starts as soon as that one ends: however many
    ask at once, at most two reads of a key are made for them."""

    def __init__(self) -> None:
        self._reading: set[K] = set()
        self._next: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        if key not in self._reading:
            return await self._read(key, read)
        waiting = self._next.get(key)
        if waiting is None:
            waiting = self._next[key] = asyncio.get_running_loop().create_future()
        return await asyncio.shield(waiting)

    async def _read(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        self._reading.add(key)
        try:
            return await read()
        finally:
            self._hand_over(key, read)

    def _hand_over(self, key: K, read: Callable[[], Awaitable[V]]) -> None:
        """A read of `key` ended: the key stays marked as being read while the next read,
        for those who asked meanwhile, starts; with nobody waiting, it is free."""
        waiting = self._next.pop(key, None)
        if waiting is None:
            self._reading.discard(key)
        else:
            asyncio.get_running_loop().create_task(self._read_for(key, read, waiting))

    async def _read_for(
        self, key: K, read: Callable[[], Awaitable[V]], waiting: asyncio.Future[V]
    ) -> None:
        try:
            waiting.set_result(await read())
        except BaseException as error:  # every waiter re-raises it
            waiting.set_exception(error)
            waiting.exception()
        finally:
            self._hand_over(key, read)


class SharedReads:
    def __init__(self, database: Database, max_entries: int = MAX_ENTRIES) -> None:
        self._database = database
        self._events: _Shared[tuple[str, int], list[RunEventRow]] = _Shared(max_entries)
        self._runs: _Shared[tuple[str, int], RunRow | None] = _Shared(max_entries)
        self._after_changes: _Shared[Hashable, list[RunRow]] = _Shared(max_entries)
        self._now: _Fresh[Hashable, RunRow | None] = _Fresh()

    async def run_now(self, org_id: str, run_id: str) -> RunRow | None:
        """The organization's run from a read that starts after this call (shared by those who
        ask at the same time)."""

        async def read() -> RunRow | None:
            async with self._database.read() as session:
                return (await rows_by_id(session, RunRow, [run_id], org_id))[0]

        return await self._now.get((org_id, run_id), read)

    async def events_after(
        self, run_id: str, after: int, reaching: int | None
    ) -> list[RunEventRow]:
        """The run's events after `after`, up to `reaching` at least (None: read afresh)."""

        async def read() -> tuple[int, list[RunEventRow]]:
            async with self._database.read() as session:
                found = await events_after(session, run_id, after)
            return (found[-1].seq if found else after), found

        return await self._events.get((run_id, after), reaching, read)

    async def run(self, run_id: str, as_of: int) -> RunRow | None:
        """The run as stored once event `as_of` was committed (or later)."""

        async def read() -> tuple[int, RunRow | None]:
            async with self._database.read() as session:
                row = await session.get(RunRow, run_id)
            return (row.last_event_seq if row else as_of), row

        return await self._runs.get((run_id, as_of), as_of, read)

    async def after_changes(
        self, changes: Hashable, read: Callable[[], Awaitable[list[RunRow]]]
    ) -> list[RunRow]:
        """Runs read once the changes that `changes` names (with whatever else the caller puts
        in it, such as a filter) were committed: every caller with the same key shares a read,
        which started after those commits since they were announced."""

        async def reading() -> tuple[int, list[RunRow]]:
            return 0, await read()

        return await self._after_changes.get(changes, 0, reading)
