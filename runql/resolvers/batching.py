"""A DataLoader that waits a few turns of the event loop before it loads.

GraphQL resolves sibling branches of different depths in different turns of the loop: a plain
DataLoader, which loads on the next turn, splits one level's keys into several batches. Waiting
a few turns (microseconds) gathers them, so the number of statements a query runs is fixed by
its shape, not by timing.
"""

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

LoadFunction = Callable[[list[K]], Awaitable[Sequence[V]]]

SETTLE_TURNS = 4


class BatchLoader(Generic[K, V]):
    def __init__(
        self,
        load: LoadFunction[K, V],
        *,
        max_batch_size: int = 500,
        settle_turns: int = SETTLE_TURNS,
    ) -> None:
        self._load = load
        self._max_batch_size = max_batch_size
        self._settle_turns = settle_turns
        self._futures: dict[K, asyncio.Future[V]] = {}
        self._waiting: list[K] = []
        self._dispatching: set[asyncio.Task[None]] = set()

    def load(self, key: K) -> asyncio.Future[V]:
        future = self._futures.get(key)
        if future is None:
            future = self._futures[key] = asyncio.get_running_loop().create_future()
            self._waiting.append(key)
            if len(self._waiting) == 1:
                asyncio.get_running_loop().call_soon(self._settle, self._settle_turns)
        return future

    def prime(self, key: K, value: V) -> None:
        """Remember a value found elsewhere, so that loading its key costs nothing."""
        if key not in self._futures:
            future = asyncio.get_running_loop().create_future()
            future.set_result(value)
            self._futures[key] = future

    def _settle(self, turns_left: int) -> None:
        loop = asyncio.get_running_loop()
        if turns_left > 0:
            loop.call_soon(self._settle, turns_left - 1)
            return
        keys, self._waiting = self._waiting, []
        for start in range(0, len(keys), self._max_batch_size):
            task = loop.create_task(self._dispatch(keys[start : start + self._max_batch_size]))
            self._dispatching.add(task)
            task.add_done_callback(self._dispatching.discard)

    async def _dispatch(self, keys: list[K]) -> None:
        try:
            values = await self._load(keys)
            if len(values) != len(keys):
                raise RuntimeError(f"a batch of {len(keys)} keys gave {len(values)} values")
        except BaseException as error:
            for key in keys:
                self._fail(key, error)
            if not isinstance(error, Exception):
                raise
            return
        for key, value in zip(keys, values, strict=True):
            future = self._futures[key]
            if not future.done():
                future.set_result(value)

    def _fail(self, key: K, error: BaseException) -> None:
        future = self._futures.pop(key, None)
        if future is not None and not future.done():
            future.set_exception(error)
