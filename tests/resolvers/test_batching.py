"""BatchLoader: keys asked for over a few turns of the loop load together."""

import asyncio

import pytest

from runql.resolvers.batching import SETTLE_TURNS, BatchLoader


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def __call__(self, keys: list[int]) -> list[int]:
        self.batches.append(list(keys))
        return [key * 10 for key in keys]


async def _after_turns(turns: int) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_keys_from_neighbouring_turns_share_one_batch() -> None:
    recorder = Recorder()
    loader = BatchLoader(recorder)

    async def late(key: int, turns: int) -> int:
        await _after_turns(turns)
        return await loader.load(key)

    values = await asyncio.gather(late(1, 0), late(2, 1), late(3, SETTLE_TURNS - 1))
    assert list(values) == [10, 20, 30]
    assert recorder.batches == [[1, 2, 3]]


async def test_a_key_is_loaded_once() -> None:
    recorder = Recorder()
    loader = BatchLoader(recorder)
    assert list(await asyncio.gather(loader.load(4), loader.load(4))) == [40, 40]
    assert await loader.load(4) == 40
    assert recorder.batches == [[4]]


async def test_batches_are_capped() -> None:
    recorder = Recorder()
    loader = BatchLoader(recorder, max_batch_size=2)
    await asyncio.gather(*(loader.load(key) for key in range(5)))
    assert recorder.batches == [[0, 1], [2, 3], [4]]


async def test_primed_values_need_no_load() -> None:
    recorder = Recorder()
    loader = BatchLoader(recorder)
    loader.prime(7, 700)
    assert await loader.load(7) == 700
    assert recorder.batches == []


async def test_a_failed_batch_fails_each_of_its_keys_and_is_retried_later() -> None:
    calls = 0

    async def flaky(keys: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise LookupError("database went away")
        return keys

    loader = BatchLoader(flaky)
    results = await asyncio.gather(loader.load(1), loader.load(2), return_exceptions=True)
    assert all(isinstance(result, LookupError) for result in results)
    assert await loader.load(1) == 1


async def test_a_load_function_that_miscounts_is_an_error() -> None:
    async def short(keys: list[int]) -> list[int]:
        return keys[:-1]

    loader = BatchLoader(short)
    with pytest.raises(RuntimeError, match="2 keys gave 1 values"):
        await asyncio.gather(loader.load(1), loader.load(2))
