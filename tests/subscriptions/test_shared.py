"""Subscribers of one operation share one execution (runql.fanout), on both protocols at once,
and still each get every event once, in order."""

import asyncio
from typing import Any

from runql.enums import RunEventType, RunStatus
from runql.lifecycle.transitions import transition
from runql.storage.events import append_event
from tests.subscriptions.client import LEGACY_WS, TRANSPORT_WS, GraphQLSocket
from tests.subscriptions.conftest import Live

RUN_EVENTS = "subscription($id: ID!) { runEvents(runId: $id) { seq type } }"
RUN_STATUS = "subscription($id: ID!) { runStatus(id: $id) { status } }"


async def _until(condition: Any, seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (the server offers no event to wait on)
            await asyncio.sleep(0.01)


async def _advance(live: Live, run_id: str, messages: int) -> None:
    async with live.database.write() as session:
        await transition(session, run_id, RunStatus.RUNNING)
    for index in range(messages):
        async with live.database.write() as session:
            await append_event(session, run_id, RunEventType.MESSAGE_ADDED, {"index": index})
    async with live.database.write() as session:
        await transition(session, run_id, RunStatus.SUCCESS)


async def test_subscribers_of_one_operation_share_one_execution(quiet_live: Live) -> None:
    live = quiet_live
    run_id = await live.create_run()
    sockets = await asyncio.gather(*(
        GraphQLSocket.open(live.ws_url, live.key, TRANSPORT_WS if i % 2 else LEGACY_WS)
        for i in range(20)))
    try:
        ids = [await socket.start(RUN_EVENTS, {"id": run_id}) for socket in sockets]
        await _until(lambda: live.streams.member_count == 20)
        assert len(live.streams) == 1
        assert live.hub.subscriber_count == 1  # the members left the hub to the shared stream
        await _advance(live, run_id, messages=5)
        outcomes = await asyncio.gather(*(s.collect(i) for s, i in zip(sockets, ids, strict=True)))
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets))
    for outcome in outcomes:
        assert outcome.completed
        assert outcome.errors == []
        assert [item["runEvents"]["seq"] for item in outcome.data] == list(range(1, 9))
    await _until(lambda: len(live.streams) == 0 and live.hub.subscriber_count == 0)


async def test_an_operation_id_used_again_gets_nothing_of_the_shared_stream_it_left(
    quiet_live: Live
) -> None:
    live = quiet_live
    run_id = await live.create_run()
    leaving, staying = [await GraphQLSocket.open(live.ws_url, live.key) for _ in range(2)]
    try:
        await leaving.send({"id": "op", "type": "subscribe",
                            "payload": {"query": RUN_EVENTS, "variables": {"id": run_id}}})
        kept = await staying.start(RUN_EVENTS, {"id": run_id})
        await _until(lambda: live.streams.member_count == 2)
        replayed = await leaving.collect("op", until=1)
        assert replayed.data == [{"runEvents": {"seq": 1, "type": "STATUS_CHANGED"}}]
        await leaving.send({"id": "op", "type": "complete"})
        await _until(lambda: live.streams.member_count == 1)
        await leaving.send({"id": "op", "type": "subscribe",
                            "payload": {"query": RUN_STATUS, "variables": {"id": run_id}}})
        await _advance(live, run_id, messages=3)
        reused = await leaving.collect("op")
        stayed = await staying.collect(kept)
    finally:
        await asyncio.gather(leaving.close(), staying.close())
    assert reused.completed
    assert all(set(item) == {"runStatus"} for item in reused.data), reused.data
    assert [item["runStatus"]["status"] for item in reused.data][-1] == "SUCCESS"
    assert [item["runEvents"]["seq"] for item in stayed.data] == list(range(1, 7))


async def test_a_closed_socket_leaves_its_shared_stream(quiet_live: Live) -> None:
    live = quiet_live
    run_id = await live.create_run()
    socket = await GraphQLSocket.open(live.ws_url, live.key)
    await socket.start(RUN_EVENTS, {"id": run_id})
    await _until(lambda: live.streams.member_count == 1)
    await socket.close()
    await _until(lambda: len(live.streams) == 0 and live.hub.subscriber_count == 0)
