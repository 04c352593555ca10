"""Shared streams write whole frames past the server's `send` when the socket has no
compression: the frames are the ones websockets writes, and every member gets the same
messages as a member whose results go through the server's `send` (permessage-deflate). The
events, carried by the hub's notices and built by the event's plan, are the ones the standard
executor gives from the log."""

import asyncio
from typing import Any

import pytest
from strawberry.types import ExecutionResult
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from runql.bus.hub import Hub
from runql.bus.shared import SharedReads
from runql.enums import RunEventType, RunStatus
from runql.fanout.sinks import text_frame
from runql.fastpath.switch import standard_only
from runql.lifecycle.transitions import transition
from runql.resolvers.context import Context
from runql.served_schema import schema_for
from runql.settings import Settings
from runql.storage.events import append_event
from runql.storage.tables import DEFAULT_ORG_ID
from tests.subscriptions.client import LEGACY_WS, TRANSPORT_WS, GraphQLSocket
from tests.subscriptions.conftest import Live

RUN_EVENTS = "subscription($id: ID!) { runEvents(runId: $id) { seq type payload } }"
SIZES = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]


@pytest.mark.parametrize("size", SIZES)
def test_a_text_frame_is_the_one_websockets_writes(size: int) -> None:
    message = ("é" * size).encode()[:size]
    expected = Frame(Opcode.TEXT, message).serialize(mask=False, extensions=[])
    assert text_frame(message) == expected


async def _open(live: Live, protocol: str, compressed: bool) -> GraphQLSocket:
    connection = await connect(
        live.ws_url,
        subprotocols=[protocol],  # type: ignore[list-item]
        compression="deflate" if compressed else None,
        max_size=None,
    )
    socket = GraphQLSocket(connection, protocol)
    await socket.send(
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {live.key}"}}
    )
    while (await socket.receive())["type"] != "connection_ack":
        pass
    return socket


async def _until(condition: Any, seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (the server offers no event to wait on)
            await asyncio.sleep(0.01)


async def _standard(live: Live, settings: Settings, run_id: str) -> list[Any]:
    """The run's events as the standard executor gives them from the log."""
    context = Context.create(
        live.database, settings, DEFAULT_ORG_ID, hub=Hub(), shared=SharedReads(live.database)
    )
    with standard_only():
        source = await schema_for(settings).subscribe(
            RUN_EVENTS, variable_values={"id": run_id}, context_value=context
        )
        assert not isinstance(source, ExecutionResult)
        return [result.data async for result in source]


async def test_members_written_past_the_server_get_what_the_others_get(
    quiet_live: Live, live_settings: Settings
) -> None:
    live = quiet_live
    run_id = await live.create_run()
    kinds = [
        (protocol, compressed)
        for protocol in (TRANSPORT_WS, LEGACY_WS)
        for compressed in (False, True)
    ]
    sockets = [await _open(live, protocol, compressed) for protocol, compressed in kinds]
    try:
        ids = [await socket.start(RUN_EVENTS, {"id": run_id}) for socket in sockets]
        await _until(lambda: live.streams.member_count == len(sockets))
        (stream,) = live.streams._streams.values()
        past = sorted(member.sink.writes_frames for member in stream.members)
        assert past == [False, False, True, True]  # compressed sockets take the server's send
        async with live.database.write() as session:
            await transition(session, run_id, RunStatus.RUNNING)
        for text in ("a", "é" * 40, "x" * 70_000, "🙂" * 20_000):  # each length's header
            async with live.database.write() as session:
                await append_event(session, run_id, RunEventType.MESSAGE_ADDED, {"text": text})
        async with live.database.write() as session:
            await transition(session, run_id, RunStatus.SUCCESS)
        outcomes = await asyncio.gather(
            *(socket.collect(i) for socket, i in zip(sockets, ids, strict=True))
        )
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets))
    for outcome in outcomes:
        assert outcome.completed
        assert outcome.errors == []
        assert outcome.data == outcomes[0].data
    assert [item["runEvents"]["seq"] for item in outcomes[0].data] == list(range(1, 8))
    assert outcomes[0].data[4]["runEvents"]["payload"] == {"text": "x" * 70_000}
    assert outcomes[0].data == await _standard(live, live_settings, run_id)
