"""The join rules of shared streams, driven step by step: a stream's execution is stood in for
by results the test releases one at a time, and members are sinks that record what they get."""

import asyncio
from collections.abc import AsyncIterator, Mapping

import pytest
from strawberry.types import ExecutionResult

from runql.fanout.sinks import Encoded, Joined, Sink
from runql.fanout.streams import Lead, Membership, SharedStreams

QUERY = 'subscription { runEvents(runId: "run_x") { seq } }'


class Recording(Sink):
    def __init__(self, *, fails: bool = False) -> None:
        super().__init__(QUERY, None, {})
        self.got: list[int] = []
        self.live = True
        self.fails = fails
        self.unread = 0
        self.closed: tuple[int, str] | None = None
        self.pause: asyncio.Event | None = None

    def backlog(self) -> int:
        return self.unread

    def is_live(self) -> bool:
        return self.live

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    async def send(self, result: Encoded) -> None:
        if self.pause is not None:
            await self.pause.wait()  # a full socket: the server's send waits
        if self.fails:
            raise ConnectionError("the socket closed")
        self.got.append(int(result.payload.split(b'"seq":')[1].split(b"}")[0]))


START = b'{"id":"1","type":"next","payload":'


class Framing(Recording):
    """A sink that writes whole frames at once, as a socket past the server does: each write
    is kept, as the frames' seqs."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[list[int]] = []

    def write_now(self, result: Encoded | Joined) -> bool:
        data, seqs = result.frame(START), []
        while data:
            assert data[0] == 0x81  # a whole text frame
            assert data[1] < 126  # short: its length in one byte
            message, data = data[2 : 2 + data[1]], data[2 + data[1] :]
            assert message.startswith(START)
            seqs.append(int(message.split(b'"seq":')[1].split(b"}")[0]))
        self.writes.append(seqs)
        self.got += seqs
        return True


class Execution:
    """The shared execution: yields a result for each event the test releases; a tuple of
    events is expressed (Lead.express) and flushed together, as the resolver does a batch of
    events the fast path builds."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[int | tuple[int, ...] | None] = asyncio.Queue()
        self.started: list[int] = []
        self.closed = asyncio.Event()

    async def subscribe(
        self,
        _org: str,
        lead: Lead,
        _query: str,
        _name: str | None,
        _variables: Mapping[str, object] | None,
    ) -> AsyncIterator[ExecutionResult]:
        self.started.append(lead.start)
        lead.build = lambda event: {"runEvents": {"seq": event}}
        return self._results(lead)

    async def _results(self, lead: Lead) -> AsyncIterator[ExecutionResult]:
        try:
            while (released := await self.events.get()) is not None:
                if isinstance(released, tuple):
                    for seq in released:
                        assert lead.express(seq, seq)
                    await lead.flush()
                    continue
                lead.seq = released
                yield ExecutionResult(data={"runEvents": {"seq": released}}, errors=None)
        finally:
            self.closed.set()

    async def release(self, *seqs: int | tuple[int, ...] | None) -> None:
        for seq in seqs:
            self.events.put_nowait(seq)
        for _ in range(20):  # the stream sends each result within a few turns of the loop
            await asyncio.sleep(0)


@pytest.fixture
def execution() -> Execution:
    return Execution()


@pytest.fixture
def streams(execution: Execution) -> SharedStreams:
    return SharedStreams(execution.subscribe, max_backlog=1000)


def _join(streams: SharedStreams, sink: Sink, position: int) -> Membership:
    membership = streams.join(sink, "org_a", position)
    assert membership is not None
    return membership


async def test_members_get_every_result_after_their_position_once(
    streams: SharedStreams, execution: Execution
) -> None:
    first, second = Recording(), Recording()
    _join(streams, first, 0)
    await execution.release(1, 2)
    _join(streams, second, 3)  # it read event 3 from the log itself
    await execution.release(3, 4, 5)
    assert execution.started == [0]
    assert first.got == [1, 2, 3, 4, 5]
    assert second.got == [4, 5]


async def test_a_member_behind_the_stream_is_refused_until_it_catches_up(
    streams: SharedStreams, execution: Execution
) -> None:
    _join(streams, Recording(), 0)
    await execution.release(1, 2)
    late = Recording()
    assert streams.join(late, "org_a", 1) is None  # event 2 was sent without it
    _join(streams, late, 2)
    await execution.release(3)
    assert late.got == [3]


async def test_one_stream_per_organization_and_variables(
    streams: SharedStreams, execution: Execution
) -> None:
    _join(streams, Recording(), 0)
    _join(streams, Recording(), 0)
    assert len(streams) == 1
    other_org = streams.join(Recording(), "org_b", 0)
    other_variables = Recording()
    other_variables.variables = {"after": 3}
    assert other_org is not None
    assert streams.join(other_variables, "org_a", 0) is not None
    assert len(streams) == 3


async def test_the_end_of_the_stream_ends_every_membership(
    streams: SharedStreams, execution: Execution
) -> None:
    memberships = [_join(streams, Recording(), 0) for _ in range(3)]
    await execution.release(1, None)
    async with asyncio.timeout(5):
        await asyncio.gather(*(membership.stay() for membership in memberships))
    assert len(streams) == 0
    assert streams.join(Recording(), "org_a", 1) is not None  # a new stream, not the ended one
    await execution.release()
    assert execution.started == [0, 1]


async def test_members_that_leave_or_fail_are_dropped_and_the_rest_go_on(
    streams: SharedStreams, execution: Execution
) -> None:
    staying, leaving, failing, gone = Recording(), Recording(), Recording(fails=True), Recording()
    memberships = {sink: _join(streams, sink, 0) for sink in (staying, leaving, failing, gone)}
    waiting = asyncio.create_task(memberships[leaving].stay())
    await execution.release(1)
    waiting.cancel()  # the client completed the operation
    gone.live = False  # the operation's id is no longer registered on its socket
    await execution.release(2, 3)
    assert staying.got == [1, 2, 3]
    assert leaving.got == [1]
    assert failing.got == []
    assert gone.got == [1]
    assert memberships[failing].finished.done()
    assert memberships[gone].finished.done()


async def test_the_last_member_leaving_stops_the_execution(
    streams: SharedStreams, execution: Execution
) -> None:
    membership = _join(streams, Recording(), 0)
    await execution.release(1)
    waiting = asyncio.create_task(membership.stay())
    await asyncio.sleep(0)
    waiting.cancel()
    async with asyncio.timeout(5):
        await execution.closed.wait()
    assert len(streams) == 0


async def test_a_slow_member_gets_everything_in_order_without_holding_up_the_others(
    streams: SharedStreams, execution: Execution
) -> None:
    fast, slow = Recording(), Recording()
    memberships = {sink: _join(streams, sink, 0) for sink in (fast, slow)}
    slow.unread = 10  # its socket still holds bytes: its results wait in its outbox
    slow.pause = asyncio.Event()
    await execution.release(1, 2)
    assert fast.got == [1, 2]
    assert slow.got == []
    await execution.release(None)  # the stream ends while the slow member's outbox is full
    assert memberships[fast].finished.done()
    assert not memberships[slow].finished.done()  # not before its outbox is written out
    slow.pause.set()
    async with asyncio.timeout(5):
        await memberships[slow].finished
    assert slow.got == [1, 2]


async def test_a_member_whose_client_does_not_read_is_cut_off_with_a_reason(
    streams: SharedStreams, execution: Execution
) -> None:
    reading, stalled = Recording(), Recording()
    _join(streams, reading, 0)
    _join(streams, stalled, 0)
    await execution.release(1)
    stalled.unread = 1001  # more than the stream's max_backlog
    await execution.release(2, 3)
    assert reading.got == [1, 2, 3]
    assert stalled.got == [1]
    assert stalled.closed is not None
    code, reason = stalled.closed
    assert code == 1013
    assert "bytes unread" in reason
    assert "after" in reason
    assert streams.member_count == 1


async def test_a_batch_of_expressed_events_reaches_each_member_in_one_write(
    streams: SharedStreams, execution: Execution
) -> None:
    """Events the lead expresses together (one commit's: a message's start and its first text)
    are one write of their frames to a member that takes frames, from the event after the one
    it joined at; a member that does not take frames gets each by `send`, in order."""
    early, by_send, late = Framing(), Recording(), Framing()
    _join(streams, early, 0)
    _join(streams, by_send, 0)
    await execution.release((1, 2))
    _join(streams, late, 3)  # it read event 3 from the log itself
    await execution.release((3, 4, 5), 6, (7,))
    assert early.writes == [[1, 2], [3, 4, 5], [6], [7]]  # 6 executed, then written alone
    assert by_send.got == [1, 2, 3, 4, 5, 6, 7]
    assert late.writes == [[4, 5], [6], [7]]


async def test_a_batch_waits_in_a_slow_members_outbox_result_by_result(
    streams: SharedStreams, execution: Execution
) -> None:
    fast, slow = Framing(), Recording()
    memberships = {sink: _join(streams, sink, 0) for sink in (fast, slow)}
    slow.unread = 10
    slow.pause = asyncio.Event()
    await execution.release((1, 2, 3), None)
    assert fast.writes == [[1, 2, 3]]
    slow.pause.set()
    async with asyncio.timeout(5):
        await memberships[slow].finished
    assert slow.got == [1, 2, 3]
