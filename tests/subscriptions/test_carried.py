"""Notices that carry their events: a follower that has had every event before one takes it
from the notice without reading the log; a gap in what notices carry is read from the log, and
a notice for an event already given is dropped: no gap, no duplicate."""

import asyncio
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from runql.bus.hub import Notice
from runql.enums import RunEventType, RunStatus
from runql.lifecycle.transitions import transition
from runql.storage.database import Database
from runql.storage.events import RunEvent, append_event
from runql.storage.tables import DEFAULT_ORG_ID, RunRow
from runql.storage.types import utcnow
from tests.subscriptions.client import GraphQLSocket
from tests.subscriptions.conftest import Live

RUN_EVENTS = """subscription($id: ID!, $after: Int) {
  runEvents(runId: $id, after: $after) { seq type payload } }"""


async def _last_seq(live: Live, run_id: str) -> int:
    async with live.database.read() as session:
        statement = select(col(RunRow.last_event_seq)).where(col(RunRow.id) == run_id)
        return int((await session.execute(statement)).scalar_one())


async def _following(live: Live, run_id: str, after: int) -> tuple[GraphQLSocket, str]:
    """A socket whose runEvents has caught up with the log (one event) and whose shared
    stream listens to the hub."""
    socket = await GraphQLSocket.open(live.ws_url, live.key)
    operation = await socket.start(RUN_EVENTS, {"id": run_id, "after": after - 1})
    first = await socket.collect(operation, until=1)
    assert [item["runEvents"]["seq"] for item in first.data] == [after]

    def listening() -> bool:  # the member is in its stream, whose execution has subscribed
        return live.streams.member_count == 1 and live.hub.subscriber_count == 1

    async with asyncio.timeout(10):
        while not listening():  # noqa: ASYNC110 (the hub offers no event to wait on)
            await asyncio.sleep(0.005)
    return socket, operation


def _carrying(event: RunEvent) -> Notice:
    return Notice(event.org_id, event.run_id, event.seq, event.status, event)


async def _events(socket: GraphQLSocket, operation: str, count: int) -> list[dict[str, Any]]:
    outcome = await socket.collect(operation, until=count, seconds=10)
    assert outcome.errors == []
    return [item["runEvents"] for item in outcome.data]


async def test_a_follower_takes_a_carried_event_without_reading_the_log(quiet_live: Live) -> None:
    live = quiet_live
    run_id = await live.create_run()
    last = await _last_seq(live, run_id)
    socket, operation = await _following(live, run_id, last)
    try:
        # an event the log does not hold: only the notice can have given it
        only_announced = RunEvent(
            DEFAULT_ORG_ID, run_id, last + 1, RunEventType.MESSAGE_ADDED, {"carried": 1}, utcnow()
        )
        live.hub.publish(_carrying(only_announced))
        [event] = await _events(socket, operation, 1)
        assert event == {"seq": last + 1, "type": "MESSAGE_ADDED", "payload": {"carried": 1}}
    finally:
        await socket.close()


async def test_a_gap_in_carried_events_is_read_from_the_log_and_repeats_are_dropped(
    quiet_live: Live,
) -> None:
    live = quiet_live
    run_id = await live.create_run()
    last = await _last_seq(live, run_id)
    socket, operation = await _following(live, run_id, last)
    # another writer of the same database, whose commits this process does not announce
    url = live.database.engine.url.render_as_string(hide_password=False)
    elsewhere = Database.from_url(url)
    try:
        written = []
        for index in range(2):
            async with elsewhere.write() as session:
                payload = {"index": index}
                written.append(
                    await append_event(session, run_id, RunEventType.MESSAGE_ADDED, payload)
                )
        live.hub.publish(_carrying(written[1]))  # the first one's notice never comes
        events = await _events(socket, operation, 2)
        assert [(e["seq"], e["payload"]) for e in events] == [
            (last + 1, {"index": 0}),
            (last + 2, {"index": 1}),
        ]
        for event in written:  # late, or repeated: already given
            live.hub.publish(_carrying(event))
        async with live.database.write() as session:
            await transition(session, run_id, RunStatus.CANCELLED)
        outcome = await socket.collect(operation, seconds=10)
        assert outcome.completed
        assert [item["runEvents"]["seq"] for item in outcome.data] == [last + 3]
    finally:
        await socket.close()
        await elsewhere.dispose()
