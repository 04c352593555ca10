"""One hub per process. Publishers post notices on channels; each subscriber has a bounded
queue, and one that falls too far behind is cut off rather than allowed to grow memory.

Notices say that something happened (which run, which sequence number) and, when the writer
had it at hand, carry the event itself: a subscriber that has had every event before it takes
it without reading the log. Anything else (a gap, a notice without its event) is read from the
run_events log. So a notice lost anywhere (a listener reconnecting, a subscriber cut off)
costs nothing but a re-read.
"""

import asyncio
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from runql.storage.events import RunEvent

DEFAULT_QUEUE_SIZE = 1000
REMEMBERED_RUNS = 10_000  # runs whose latest announced sequence number the hub keeps in mind


@dataclass(frozen=True, slots=True)
class Notice:
    org_id: str
    run_id: str
    seq: int
    status: str | None = None  # the run's new status, when the event changed it
    event: RunEvent | None = field(default=None, compare=False)  # the event, when carried


Observer = Callable[[Notice], None]


class SubscriberLagging(Exception):
    """The subscriber left more than its queue's worth of notices unread."""

    def __init__(self, backlog: int) -> None:
        super().__init__(f"the subscriber fell {backlog} notices behind and was cut off")
        self.backlog = backlog


class Subscriber:
    def __init__(self, channels: tuple[str, ...], queue_size: int) -> None:
        self.channels = channels
        self._queue: asyncio.Queue[Notice] = asyncio.Queue(queue_size)
        self._lagging = False

    def offer(self, notice: Notice) -> None:
        if self._lagging:
            return
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            self._lagging = True  # the full queue wakes the reader, which then raises

    async def next(self, within: float | None = None) -> Notice | None:
        """The next notice; None when `within` seconds pass first. Raises SubscriberLagging."""
        if self._lagging:
            raise SubscriberLagging(self._queue.maxsize)
        if not self._queue.empty():  # a shared stream's lead, woken again and again: no wait
            notice = self._queue.get_nowait()
        else:
            try:  # a timeout on this task, where wait_for made a task for each wait
                async with asyncio.timeout(within):
                    notice = await self._queue.get()
            except TimeoutError:
                return None
        if self._lagging:
            raise SubscriberLagging(self._queue.maxsize)
        return notice

    def recover(self) -> None:
        """Take a lagging subscriber back, its backlog dropped: for one that re-reads the log."""
        self.drain()
        self._lagging = False

    def drain(self) -> list[Notice]:
        """Every notice waiting now, without waiting for more."""
        found = []
        while not self._queue.empty():
            found.append(self._queue.get_nowait())
        return found


class Hub:
    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._subscribers: defaultdict[str, set[Subscriber]] = defaultdict(set)
        self._observers: list[Observer] = []
        self._latest: OrderedDict[str, int] = OrderedDict()  # run -> its last announced seq

    def observe(self, observer: Observer) -> None:
        """Call `observer` with every notice (the executor wakes on new runs this way)."""
        self._observers.append(observer)

    def unobserve(self, observer: Observer) -> None:
        self._observers.remove(observer)

    def wake_everyone(self) -> None:
        """Make every subscriber re-read the log: after a feeder reconnects, notices may have
        been missed, and the log has what they said."""
        for members in tuple(self._subscribers.values()):
            for subscriber in tuple(members):
                subscriber.offer(Notice("", "", 0))

    @property
    def subscriber_count(self) -> int:
        return len({s for subscribers in self._subscribers.values() for s in subscribers})

    def publish(self, notice: Notice) -> None:
        """Offer the notice to everyone on its run's and its organization's channels, once: a
        notice of an event at or before one already announced for its run says nothing new
        (two feeders may hear one commit: on SQLite the log tail can read this process's own
        row before the commit listener announces it), and a subscriber that missed an event
        reads the log anyway."""
        if notice.run_id and notice.seq:
            if notice.seq <= self._latest.get(notice.run_id, 0):
                return
            self._latest[notice.run_id] = notice.seq
            self._latest.move_to_end(notice.run_id)
            if len(self._latest) > REMEMBERED_RUNS:
                self._latest.popitem(last=False)
        for channel in (run_channel(notice.run_id), org_channel(notice.org_id)):
            for subscriber in tuple(self._subscribers.get(channel, ())):
                subscriber.offer(notice)
        for observer in self._observers:
            observer(notice)

    @asynccontextmanager
    async def subscribe(self, channels: Iterable[str]) -> AsyncIterator[Subscriber]:
        subscriber = Subscriber(tuple(channels), self.queue_size)
        for channel in subscriber.channels:
            self._subscribers[channel].add(subscriber)
        try:
            yield subscriber
        finally:
            for channel in subscriber.channels:
                members = self._subscribers[channel]
                members.discard(subscriber)
                if not members:
                    del self._subscribers[channel]


def run_channel(run_id: str) -> str:
    return f"run:{run_id}"


def org_channel(org_id: str) -> str:
    return f"org:{org_id}"
