"""runql.agents.sse: the same events however the body is cut into pieces, read one at a time
or a piece at a time."""

from collections.abc import AsyncIterator

from runql.agents.sse import lines_of, sse_batches, sse_data

BODY = (
    b": a comment\r\ndata: one\r\n\r\n"
    b"event: x\ndata:two\ndata:  2b\n\n"
    b'data: {"three": 3}\n\n'
    b"data: cut off"
)
EVENTS = [b"one", b"two\n 2b", b'{"three": 3}']


async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_every_cut_gives_the_same_events() -> None:
    for size in range(1, len(BODY) + 1):
        one_by_one = [data async for data in sse_data(lines_of(pieces(BODY, size)))]
        batched = [batch async for batch in sse_batches(pieces(BODY, size))]
        assert one_by_one == EVENTS, size
        assert [data for batch in batched for data in batch] == EVENTS, size
        assert all(batched), size  # no empty batch


async def test_a_piece_s_events_come_together() -> None:
    batched = [batch async for batch in sse_batches(pieces(BODY, len(BODY)))]
    assert batched == [EVENTS]


async def test_an_unterminated_event_is_kept_only_when_asked() -> None:
    lenient = [data async for data in sse_data(lines_of(pieces(BODY, 7)), unterminated=True)]
    assert lenient == [*EVENTS, b"cut off"]
