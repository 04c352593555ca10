"""The in-process hub: channels, bounded queues, and cutting off a subscriber that lags."""

import asyncio

import pytest

from runql.bus.hub import Hub, Notice, SubscriberLagging, org_channel, run_channel


async def test_a_notice_reaches_its_run_and_organization_channels_only() -> None:
    hub = Hub()
    notice = Notice("org_1", "run_1", 1)
    async with (
        hub.subscribe([run_channel("run_1")]) as by_run,
        hub.subscribe([org_channel("org_1")]) as by_org,
        hub.subscribe([run_channel("run_2"), org_channel("org_2")]) as elsewhere,
    ):
        hub.publish(notice)
        assert await by_run.next(within=1) == notice
        assert await by_org.next(within=1) == notice
        assert await elsewhere.next(within=0.05) is None


async def test_unsubscribing_leaves_no_trace() -> None:
    hub = Hub()
    async with hub.subscribe([run_channel("run_1")]):
        assert hub.subscriber_count == 1
    assert hub.subscriber_count == 0
    hub.publish(Notice("org_1", "run_1", 1))  # nobody listens: nothing to do


async def test_a_subscriber_that_falls_behind_is_cut_off_and_memory_stays_bounded() -> None:
    hub = Hub(queue_size=3)
    async with hub.subscribe([run_channel("run_1")]) as slow:
        for seq in range(1, 100):
            hub.publish(Notice("org_1", "run_1", seq))
        assert len(slow.drain()) == 3
        with pytest.raises(SubscriberLagging, match="3 notices behind"):
            await slow.next(within=1)


async def test_a_lagging_subscriber_that_rereads_the_log_can_be_taken_back() -> None:
    hub = Hub(queue_size=3)
    async with hub.subscribe([run_channel("run_1")]) as shared_stream:
        for seq in range(1, 10):
            hub.publish(Notice("org_1", "run_1", seq))
        with pytest.raises(SubscriberLagging):
            await shared_stream.next(within=1)
        shared_stream.recover()  # its backlog is dropped: it reads the log instead
        assert await shared_stream.next(within=0.05) is None
        hub.publish(Notice("org_1", "run_1", 10))
        assert await shared_stream.next(within=1) == Notice("org_1", "run_1", 10)


async def test_an_event_already_announced_is_not_announced_again() -> None:
    """Two feeders may hear one commit (on SQLite the log tail can read this process's own
    row before its commit listener announces it): each event reaches a subscriber once, and
    a late notice of an earlier event is dropped too."""
    hub = Hub()
    async with hub.subscribe([run_channel("run_1")]) as follower:
        for seq in (1, 2, 2, 1, 3):
            hub.publish(Notice("org_1", "run_1", seq))
        hub.publish(Notice("org_1", "run_2", 1))  # another run's count is its own
        assert [notice.seq for notice in follower.drain()] == [1, 2, 3]


async def test_next_waits_for_a_notice_within_its_time_and_leaves_nothing_behind() -> None:
    hub = Hub()
    async with hub.subscribe([run_channel("run_1")]) as follower:
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, hub.publish, Notice("org_1", "run_1", 1))
        assert await follower.next(within=1) == Notice("org_1", "run_1", 1)  # woken, not timed out

        started = loop.time()
        assert await follower.next(within=0.05) is None
        assert 0.04 < loop.time() - started < 1

        waiting = asyncio.ensure_future(follower.next(within=5))
        await asyncio.sleep(0.01)
        waiting.cancel()  # the client left while it waited
        with pytest.raises(asyncio.CancelledError):
            await waiting
        hub.publish(Notice("org_1", "run_1", 2))  # not swallowed by the cancelled wait
        assert await follower.next(within=1) == Notice("org_1", "run_1", 2)


async def test_a_notice_already_queued_is_taken_without_giving_up_the_loop() -> None:
    """A shared stream's lead is woken for every flush: what is queued is taken at once."""
    hub = Hub()
    async with hub.subscribe([run_channel("run_1")]) as lead:
        hub.publish(Notice("org_1", "run_1", 1))
        other_ran = False

        def other() -> None:
            nonlocal other_ran
            other_ran = True

        asyncio.get_running_loop().call_soon(other)
        assert await lead.next(within=1) == Notice("org_1", "run_1", 1)
        assert not other_ran
