"""No lost and no duplicated event: many subscribers, drops and resumes, and the switch from
replay to live racing a stream of commits."""

import asyncio
import random

from runql.enums import RunEventType, RunStatus
from runql.lifecycle.transitions import transition
from runql.storage.events import append_event
from tests.subscriptions.client import GraphQLSocket
from tests.subscriptions.conftest import Live

RUN_STATUS = "subscription($id: ID!) { runStatus(id: $id) { status } }"
RUN_EVENTS = """subscription($id: ID!, $after: Int) {
  runEvents(runId: $id, after: $after) { seq type } }"""
STORM = 300


async def _storm(live: Live, run_id: str, count: int = STORM) -> None:
    """RUNNING, `count` events as fast as commits go, then SUCCESS: one transaction each."""
    async with live.database.write() as session:
        await transition(session, run_id, RunStatus.RUNNING)
    for index in range(count):
        async with live.database.write() as session:
            await append_event(session, run_id, RunEventType.MESSAGE_ADDED, {"index": index})
        if index % 25 == 0:
            await asyncio.sleep(0)
    async with live.database.write() as session:
        await transition(session, run_id, RunStatus.SUCCESS)


async def _events(
    live: Live, run_id: str, after: int | None = None, stop_after: int | None = None
) -> list[int]:
    socket = await GraphQLSocket.open(live.ws_url, live.key)
    try:
        outcome = await socket.collect(
            await socket.start(RUN_EVENTS, {"id": run_id, "after": after}),
            until=stop_after,
            seconds=60,
        )
    finally:
        await socket.close()
    assert outcome.errors == []
    return [item["runEvents"]["seq"] for item in outcome.data]


async def test_fifty_subscribers_each_see_every_transition_once_in_order(live: Live) -> None:
    run_id = await live.create_run()
    sockets = await asyncio.gather(*(GraphQLSocket.open(live.ws_url, live.key) for _ in range(50)))
    try:
        ids = [await socket.start(RUN_STATUS, {"id": run_id}) for socket in sockets]
        outcomes = await asyncio.gather(*(s.collect(i) for s, i in zip(sockets, ids, strict=True)))
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets))
    for outcome in outcomes:
        statuses = [item["runStatus"]["status"] for item in outcome.data]
        assert outcome.completed
        assert statuses[-1] == "SUCCESS"
        assert statuses == ["PENDING", "RUNNING", "SUCCESS"][-len(statuses) :]


async def test_subscribers_joining_during_a_storm_miss_nothing_and_repeat_nothing(
    quiet_live: Live,
) -> None:
    live = quiet_live
    run_id = await live.create_run()
    expected = list(range(1, STORM + 4))  # pending, running, the storm, success

    async def late_subscriber() -> list[int]:
        await asyncio.sleep(random.uniform(0, 0.4))
        return await _events(live, run_id)

    storm = asyncio.create_task(_storm(live, run_id))
    results = await asyncio.gather(*(late_subscriber() for _ in range(12)))
    await storm
    for seqs in results:
        assert seqs == expected


async def test_a_dropped_subscriber_resumes_with_exactly_what_it_missed(quiet_live: Live) -> None:
    live = quiet_live
    run_id = await live.create_run()
    storm = asyncio.create_task(_storm(live, run_id))
    seen: list[int] = []
    rng = random.Random(5)
    while not seen or seen[-1] != STORM + 3:
        after = seen[-1] if seen else None
        seen += await _events(live, run_id, after=after, stop_after=rng.randint(5, 60))
    await storm
    assert seen == list(range(1, STORM + 4))
