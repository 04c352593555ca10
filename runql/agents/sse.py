"""Reading a streamed HTTP body as lines and as server-sent events, for the agents that
stream (a webhook's `text/event-stream` answer, a Chat Completions stream).

`Lines` and `Events` do the work on what they are given; `lines_of` and `sse_data` read a body
with them one line and one event at a time, and `sse_batches` one piece of the body at a time
(every event a piece completes, together), for a reader that would rather not resume for each."""

from collections.abc import AsyncIterable, AsyncIterator, Callable


class Lines:
    """A body's lines, from its pieces: `feed` gives the lines a piece ends (without their
    line ends, LF or CRLF), `rest` the last one when the body ends without its end."""

    def __init__(self) -> None:
        self.pending = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:
            self.pending += chunk
            return []
        self.pending += chunk
        *lines, rest = self.pending.split(b"\n")
        self.pending = rest
        return [bytes(line.removesuffix(b"\r")) for line in lines]

    def rest(self) -> bytes | None:
        return bytes(self.pending).removesuffix(b"\r") if self.pending else None


class Events:
    """Each event's data, as the SSE format joins it: its `data:` lines (one leading space
    dropped) joined by newlines, an event ending at a blank line; other fields and comments
    ignored."""

    def __init__(self) -> None:
        self.data: list[bytes] = []

    def line(self, line: bytes) -> bytes | None:
        """The data of the event this line ends, if it ends one."""
        if not line:
            data, self.data = self.data, []
            return b"\n".join(data) if data else None
        if line.startswith(b"data:"):
            value = line[5:]
            self.data.append(value[1:] if value.startswith(b" ") else value)
        return None

    def unterminated(self) -> bytes | None:
        """The data of an event the body ended before its blank line."""
        return b"\n".join(self.data) if self.data else None


async def lines_of(
    chunks: AsyncIterable[bytes],
    max_pending: int | None = None,
    too_long: Callable[[], None] | None = None,
) -> AsyncIterator[bytes]:
    """The body's lines without their line ends (LF or CRLF); the last one even without its
    end. `too_long()` is called (and must raise) when more than `max_pending` bytes wait for
    a line end."""
    lines = Lines()
    async for chunk in chunks:
        for line in lines.feed(chunk):
            yield line
        if max_pending is not None and too_long is not None and len(lines.pending) > max_pending:
            too_long()
    if (rest := lines.rest()) is not None:
        yield rest


async def sse_data(
    lines: AsyncIterable[bytes], *, unterminated: bool = False
) -> AsyncIterator[bytes]:
    """Each event's data (`Events`). An event the body ends before its blank line is dropped,
    as the format says, unless `unterminated` (a lenient reader's choice)."""
    events = Events()
    async for line in lines:
        if (data := events.line(line)) is not None:
            yield data
    if unterminated and (data := events.unterminated()) is not None:
        yield data


async def sse_batches(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[bytes]]:
    """The data of the events each piece of the body completes, a list a piece (none for a
    piece that completes no event); an event the body ends before its blank line is dropped."""
    lines, events = Lines(), Events()
    async for chunk in chunks:
        found = [data for line in lines.feed(chunk) if (data := events.line(line)) is not None]
        if found:
            yield found
    if (rest := lines.rest()) is not None and (data := events.line(rest)) is not None:
        yield [data]
