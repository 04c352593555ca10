"""One execution per operation, written to every socket that subscribed to it.

A shared stream runs the subscription once, as a subscriber of its own would (same resolver,
same extensions, same errors), but starting after an event given by its first member, and
writes each result to every member; an event the fast path builds from its row alone is
written without an execution of its own (Lead.express), and the events of one batch (what one
commit announced: a message's start and its first text, say) go to each member in one write of
their frames (Lead.flush). A member joins at the point it has
reached by itself; the stream sends it what comes after that point and nothing before, so a
member never gets an event twice or misses one:

- `position` is the event whose result the stream sends or has sent last; the members to send
  it to are taken when it starts.
- A member at `p` joins only when `p >= position`; the results for events up to `p` are skipped
  for it. A member behind the stream reads on from the log by itself and tries again.
"""

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import orjson
from strawberry.types import ExecutionResult

from runql.encoding import dumps
from runql.fanout.sinks import Encoded, Joined, Sink, current_sink

log = logging.getLogger("runql.fanout")

YIELD_EVERY = 1000  # members written between two turns given to the rest of the server
LAGGING_CLOSE_CODE = 1013  # "try again later"
DEFAULT_MAX_BACKLOG = 4 * 1024 * 1024

StreamKey = tuple[str, str, str | None, bytes]


Sent = list[tuple[Encoded, int]]  # results, each with the event it stands for, in order


@dataclass
class Lead:
    """What a shared stream tells the resolver it runs: start after event `start`; before each
    result it yields, the resolver sets `seq` to the event that result stands for.

    `express` takes an event for the members without yielding it, where the executor has said
    how the operation's events are built from their rows alone (`build`, the fast path's plan of
    its events): the result an execution of that event makes, with no execution (no per-event
    executor, extension hooks or result objects). The executor says so only where the schema's
    extensions add nothing to a result; their hooks on each result change only its errors, and
    a built result has none. What it takes waits for `flush`, which the resolver calls at the
    end of each batch of events and before it yields one, so that a batch's results reach each
    member in one write."""

    start: int
    seq: int = 0
    send: Callable[[Sent], Awaitable[None]] | None = None  # set by the stream
    build: Callable[[Any], dict[str, Any] | None] | None = None  # set by the executor
    pending: Sent = field(default_factory=list)

    def express(self, event: Any, seq: int) -> bool:
        """Whether `event`, numbered `seq`, was taken for the members as built from its row;
        False where it cannot be (then the resolver flushes, and yields it to be executed)."""
        if self.build is None or self.send is None:
            return False
        try:
            data = self.build(event)
        except Exception:  # a value the plan does not write as the executor would
            log.debug("an event's plan declined it", exc_info=True)
            return False
        if data is None:
            return False
        self.seq = seq
        self.pending.append((_encoded(data), seq))
        return True

    async def flush(self) -> None:
        """Send what `express` took, in order."""
        if self.pending and self.send is not None:
            pending, self.pending = self.pending, []
            await self.send(pending)


# runs the operation for a stream: (org_id, lead, query, operation_name, variables) -> results
RunShared = Callable[[str, Lead, str, str | None, Mapping[str, object] | None], Awaitable[Any]]


class Membership:
    """A subscriber in a shared stream. While its client reads slower than the stream writes
    (its socket holds unsent bytes), its results wait in an outbox that a task of its own
    writes out, so one slow client never holds up the others."""

    def __init__(self, stream: "SharedStream", sink: Sink, skip_through: int) -> None:
        self.sink = sink
        self.skip_through = skip_through
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stream = stream
        self._outbox: deque[Encoded] = deque()
        self.queued = 0  # bytes of payload in the outbox
        self._writer: asyncio.Task[None] | None = None
        self._ending = False

    @property
    def slow(self) -> bool:
        return bool(self._outbox)

    async def stay(self) -> None:
        """Until the stream has sent its last result (or failed: that error is raised here).
        Leaving early, by cancellation, takes the member out of the stream."""
        try:
            await self.finished
        finally:
            self.abandon()
            self._stream.leave(self)

    def queue(self, result: Encoded) -> None:
        self._outbox.append(result)
        self.queued += len(result)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_out(), name="runql-slow-member")

    async def _write_out(self) -> None:
        try:
            while self._outbox:
                await self.sink.send(self._outbox[0])  # waits while the socket is full
                self.queued -= len(self._outbox.popleft())
        except Exception:  # the socket closed
            self._writer = None
            self.abandon()
            self._stream.leave(self)
            self._resolve(None)
            return
        self._writer = None
        if self._ending:
            self._resolve(None)

    def end(self, error: BaseException | None = None) -> None:
        """The stream has nothing more for this member: once its outbox is written out (at
        once on an error), its operation completes."""
        if self._writer is not None and error is None:
            self._ending = True
            return
        self.abandon()
        self._resolve(error)

    def abandon(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
        self._outbox.clear()
        self.queued = 0

    def _resolve(self, error: BaseException | None) -> None:
        if self.finished.done():
            return
        if error is None:
            self.finished.set_result(None)
        else:
            self.finished.set_exception(error)


def _encoded(
    data: object, errors: list[Any] | None = None, extensions: dict[str, Any] | None = None
) -> Encoded:
    """A result's JSON as the websocket protocols carry it, encoded once for every member."""
    payload: dict[str, object] = {"data": data}
    if errors:
        payload["errors"] = errors
    if extensions:
        payload["extensions"] = extensions
    return Encoded(dumps(payload))


def _payload(result: ExecutionResult) -> Encoded:
    errors = [error.formatted for error in result.errors] if result.errors else None
    return _encoded(result.data, errors, result.extensions)


def _lagging(unread: int) -> str:
    return (
        f"the client left {unread} bytes unread and was cut off; resubscribe with `after` "
        "set to the last sequence number you saw"
    )


class SharedStream:
    def __init__(self, streams: "SharedStreams", key: StreamKey, start: int) -> None:
        self.lead = Lead(start, send=self._send_all_of)
        self.position = start
        self.members: list[Membership] = []
        self._streams = streams
        self._key = key
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def admit(self, sink: Sink, position: int) -> Membership | None:
        if self._closed or position < self.position:
            return None
        member = Membership(self, sink, position)
        self.members.append(member)
        return member

    def leave(self, member: Membership) -> None:
        if member in self.members:
            self.members.remove(member)
        if not self.members and not self._closed:
            self._close()
            if self._task is not None:
                self._task.cancel()

    def start(self, results: Callable[[], Any]) -> None:
        self._task = asyncio.create_task(  # its own context: no member's request or sink
            self._lead(results), name="runql-shared-stream", context=contextvars.Context()
        )

    async def _lead(self, results: Callable[[], Any]) -> None:
        error: BaseException | None = None
        try:
            await self._send_all(await results())
        except asyncio.CancelledError:
            raise
        except Exception as failure:  # a fault of runql's own: each member's operation reports it
            log.exception("a shared subscription stream failed")
            error = failure
        finally:
            self._close()
            for member in self.members:
                member.end(error)

    async def _send_all(self, source: AsyncIterator[ExecutionResult] | ExecutionResult) -> None:
        if isinstance(source, ExecutionResult):  # members ran the same document: not expected
            raise RuntimeError(f"the shared operation did not start: {source.errors}")
        async with aclosing(source):  # type: ignore[type-var]
            async for result in source:
                await self._send(_payload(result), self.lead.seq)

    async def _send(self, result: Encoded, seq: int) -> None:
        await self._send_all_of([(result, seq)])

    async def _send_all_of(self, sent: Sent) -> None:
        """Results in order, to each member those after the event it joined at: where it can
        take them at once, their frames in one write."""
        self.position = sent[-1][1]
        results = [result for result, _seq in sent]
        whole = results[0] if len(results) == 1 else Joined(results)
        for count, member in enumerate(tuple(self.members), 1):
            if sent[0][1] <= member.skip_through:  # it has some of them already
                own = [result for result, seq in sent if seq > member.skip_through]
                if own:
                    await self._send_member(member, own, own[0] if len(own) == 1 else Joined(own))
            else:
                await self._send_member(member, results, whole)
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    async def _send_member(
        self, member: Membership, results: list[Encoded], whole: Encoded | Joined
    ) -> None:
        sink = member.sink
        try:
            if not sink.is_live():
                self._drop(member)
            elif member.slow or sink.backlog() > 0:
                unread = member.queued + sink.backlog() + len(whole)
                if unread > self._streams.max_backlog:
                    self._cut_off(member, unread)
                else:
                    for result in results:
                        member.queue(result)
            elif not sink.write_now(whole):
                for result in results:
                    await sink.send(result)  # an empty socket buffer: this does not wait
        except Exception:  # that socket closed; the others go on
            self._drop(member)

    def _drop(self, member: Membership) -> None:
        if member in self.members:
            self.members.remove(member)
        member.abandon()
        member.end()

    def _cut_off(self, member: Membership, unread: int) -> None:
        """Too far behind: out of the stream, its outbox dropped, its socket closed with a
        reason that says how to resume. The close frame waits behind what the socket holds
        (the server's keep-alive ends a client that reads nothing at all)."""
        if member in self.members:
            self.members.remove(member)
        member.abandon()
        self._streams.close_later(member.sink, LAGGING_CLOSE_CODE, _lagging(unread))

    def _close(self) -> None:
        self._closed = True
        self._streams.forget(self._key, self)


class SharedStreams:
    """The shared streams of one process, by (organization, document, operation, variables).
    `subscribe(org_id, lead, query, operation_name, variables)` runs the operation for a stream.
    A member whose client leaves more than `max_backlog` bytes unread is disconnected (1013)
    rather than allowed to grow the server's memory."""

    def __init__(self, subscribe: RunShared, max_backlog: int = DEFAULT_MAX_BACKLOG) -> None:
        self._subscribe = subscribe
        self.max_backlog = max_backlog
        self._closing: set[asyncio.Task[None]] = set()
        self._streams: dict[StreamKey, SharedStream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    @property
    def member_count(self) -> int:
        return sum(len(stream.members) for stream in self._streams.values())

    def join(self, sink: Sink, org_id: str, position: int) -> Membership | None:
        """Make `sink`, whose subscriber has had every event up to `position`, a member of its
        operation's shared stream; None when the stream is further on (read on, then retry)."""
        key: StreamKey = (
            org_id,
            sink.query,
            sink.operation_name,
            dumps(sink.variables, option=orjson.OPT_SORT_KEYS),
        )
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = SharedStream(self, key, position)
            lead = stream.lead
            stream.start(
                lambda: self._subscribe(
                    org_id, lead, sink.query, sink.operation_name, sink.variables
                )
            )
        return stream.admit(sink, position)

    def close_later(self, sink: Sink, code: int, reason: str) -> None:
        closing = asyncio.create_task(sink.close(code, reason), name="runql-cut-off")
        self._closing.add(closing)
        closing.add_done_callback(self._closed)

    def _closed(self, closing: "asyncio.Task[None]") -> None:
        self._closing.discard(closing)
        if not closing.cancelled():
            closing.exception()  # a socket already gone: nothing more to do

    def forget(self, key: StreamKey, stream: SharedStream) -> None:
        if self._streams.get(key) is stream:
            del self._streams[key]


def joiner(
    streams: "SharedStreams | None", org_id: str
) -> Callable[[int], Membership | None] | None:
    """How the subscription being resolved may join a shared stream; None when it may not (not
    on a websocket, or it is a shared stream's own execution)."""
    sink = current_sink()
    if streams is None or sink is None:
        return None
    return lambda position: streams.join(sink, org_id, position)
