"""Reading a streamed HTTP body as lines and as server-sent events, for the agents that
stream (a webhook's `text/event-stream` answer, a Chat Completions stream)."""

from collections.abc import AsyncIterable, AsyncIterator, Callable


async def lines_of(
    chunks: AsyncIterable[bytes],
    max_pending: int | None = None,
    too_long: Callable[[], None] | None = None,
) -> AsyncIterator[bytes]:
    """The body's lines without their line ends (LF or CRLF); the last one even without its
    end. `too_long()` is called (and must raise) when more than `max_pending` bytes wait for
    a line end."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            yield line.removesuffix(b"\r")
        if max_pending is not None and too_long is not None and len(buffer) > max_pending:
            too_long()
    if buffer:
        yield bytes(buffer).removesuffix(b"\r")


async def sse_data(
    lines: AsyncIterable[bytes], *, unterminated: bool = False
) -> AsyncIterator[bytes]:
    """Each event's data, as the SSE format joins it: its `data:` lines (one leading space
    dropped) joined by newlines, an event ending at a blank line; other fields and comments
    ignored. An event the body ends before its blank line is dropped, as the format says,
    unless `unterminated` (a lenient reader's choice)."""
    data: list[bytes] = []
    async for line in lines:
        if not line:
            if data:
                yield b"\n".join(data)
            data = []
        elif line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
    if data and unterminated:
        yield b"\n".join(data)
