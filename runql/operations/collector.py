"""How a server process uses Python's cyclic garbage collector (`runql serve` calls `settle`
once its start-up is done).

A full collection walks every tracked object the process holds and stops the event loop while
it does: on a gateway holding 1,000 subscribed websockets, about 370,000 objects and 90-300 ms
on the benchmark machine, every stream paused at once. Two measures keep them out of the way:

- what start-up made (modules, the schema, the plans) is frozen after a collection, out of the
  collector's reach for the process's life (it is never garbage);
- young collections run every YOUNG_EVERY net allocations of tracked objects, not Python's 700.
  Most of what a request or a streamed token allocates is freed by its reference count before
  that many accumulate; at 700 much of it was alive at a young collection (a flush waits up to
  50 ms, a request a few), so it was promoted, and promotions are what bring the full
  collections on (one each time the old generation grows by a quarter). bench/stream.py with
  1,000 sockets: 10-11 full collections in a gateway's life at 700, 1,090-1,420 ms in all,
  and one of 240-280 ms inside the 10 s of streaming in three runs of four; at 50,000, none
  after start-up (BENCHMARKS.md). A young collection then walks at most YOUNG_EVERY objects,
  a few milliseconds, and cyclic garbage waits at most that long to be freed.
"""

import gc

YOUNG_EVERY = 50_000


def settle() -> None:
    """After start-up: collect, freeze what is left, and collect the young every YOUNG_EVERY
    net allocations (the older generations' thresholds stay Python's)."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_EVERY, middle, old)
