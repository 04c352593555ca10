"""Subscribers of one operation share one execution (runql.fanout), on both protocols at once,
and still each get every event once, in order."""

import asyncio
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Close, Opcode
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from runql.enums import RunEventType, RunStatus
from runql.fanout.streams import LAGGING_CLOSE_CODE
from runql.fastpath.executor import FastExecutor
from runql.lifecycle.transitions import transition
from runql.settings import Environment, Settings
from runql.storage.database import Database
from runql.storage.events import append_event
from tests.subscriptions.client import LEGACY_WS, TRANSPORT_WS, GraphQLSocket
from tests.subscriptions.conftest import Live, live_server

RUN_EVENTS = "subscription($id: ID!) { runEvents(runId: $id) { seq type } }"
RUN_STATUS = "subscription($id: ID!) { runStatus(id: $id) { status } }"
BIG_EVENTS = "subscription($id: ID!) { runEvents(runId: $id) { seq payload } }"
BIG_EVENTS_COUNT = 150  # 100 kB each


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
    sockets = await asyncio.gather(
        *(
            GraphQLSocket.open(live.ws_url, live.key, TRANSPORT_WS if i % 2 else LEGACY_WS)
            for i in range(20)
        )
    )
    try:
        ids = [await socket.start(RUN_EVENTS, {"id": run_id}) for socket in sockets]
        await _until(lambda: live.streams.member_count == 20)
        assert len(live.streams) == 1
        # the members left the hub to the shared stream, whose execution subscribes by itself
        await _until(lambda: live.hub.subscriber_count == 1)
        assert live.hub.subscriber_count == 1
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
    quiet_live: Live,
) -> None:
    live = quiet_live
    run_id = await live.create_run()
    leaving, staying = [await GraphQLSocket.open(live.ws_url, live.key) for _ in range(2)]
    try:
        await leaving.send(
            {
                "id": "op",
                "type": "subscribe",
                "payload": {"query": RUN_EVENTS, "variables": {"id": run_id}},
            }
        )
        kept = await staying.start(RUN_EVENTS, {"id": run_id})
        await _until(lambda: live.streams.member_count == 2)
        replayed = await leaving.collect("op", until=1)
        assert replayed.data == [{"runEvents": {"seq": 1, "type": "STATUS_CHANGED"}}]
        await leaving.send({"id": "op", "type": "complete"})
        await _until(lambda: live.streams.member_count == 1)
        await leaving.send(
            {
                "id": "op",
                "type": "subscribe",
                "payload": {"query": RUN_STATUS, "variables": {"id": run_id}},
            }
        )
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


class StalledClient:
    """A graphql-transport-ws client (the `websockets` library's sans-I/O protocol over a plain
    socket with a small receive buffer) that stops reading once subscribed."""

    def __init__(self, port: int) -> None:
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.setblocking(False)
        self.port = port
        self.protocol = ClientProtocol(
            parse_uri(f"ws://127.0.0.1:{port}/graphql"), subprotocols=[Subprotocol(TRANSPORT_WS)]
        )
        self.events: list[Any] = []

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        for chunk in self.protocol.data_to_send():
            if chunk:
                await loop.sock_sendall(self.socket, chunk)

    async def _next(self) -> Any:
        loop = asyncio.get_running_loop()
        while not self.events:
            data = await loop.sock_recv(self.socket, 65536)
            self.protocol.receive_data(data)
            self.events += self.protocol.events_received()
            if not data and not self.events:
                return None
        return self.events.pop(0)

    async def subscribe(self, key: str, query: str, variables: dict[str, Any]) -> None:
        await asyncio.get_running_loop().sock_connect(self.socket, ("127.0.0.1", self.port))
        self.protocol.send_request(self.protocol.connect())
        await self._flush()
        await self._next()  # the handshake's response
        for message in (
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}},
            {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}},
        ):
            self.protocol.send_text(json.dumps(message).encode())
            await self._flush()
        ack = await self._next()
        assert json.loads(ack.data)["type"] == "connection_ack"

    async def read_to_the_close(self) -> Close | None:
        """Read everything the server sent: the close frame comes after what was unread."""
        async with asyncio.timeout(60):
            while (event := await self._next()) is not None:
                if event.opcode is Opcode.CLOSE:
                    return Close.parse(event.data)
        return None


async def test_a_client_that_stops_reading_is_cut_off_and_the_others_go_on(
    database: Database, live_settings: Settings
) -> None:
    settings = live_settings.replace(workers=0, ws_max_backlog_bytes=256 * 1024)
    async with live_server(database, settings, "backlog") as live:
        key, streams = live.key, live.streams
        run_id = await live.create_run()
        stalled = StalledClient(urlsplit(live.ws_url).port or 0)
        await stalled.subscribe(key, BIG_EVENTS, {"id": run_id})
        reader = await GraphQLSocket.open(live.ws_url, key)
        operation = await reader.start(BIG_EVENTS, {"id": run_id})
        await _until(lambda: streams.member_count == 2)
        for index in range(BIG_EVENTS_COUNT):  # far more than the kernel's buffers hold
            async with database.write() as session:
                await append_event(
                    session,
                    run_id,
                    RunEventType.MESSAGE_ADDED,
                    {"index": index, "blob": "x" * 100_000},
                )
        async with database.write() as session:
            await transition(session, run_id, RunStatus.CANCELLED)
        read = await reader.collect(operation, seconds=60)
        await reader.close()
        close = await stalled.read_to_the_close()
        stalled.socket.close()
    assert read.completed
    assert [item["runEvents"]["seq"] for item in read.data] == list(range(1, BIG_EVENTS_COUNT + 3))
    assert close is not None
    assert close.code == LAGGING_CLOSE_CODE
    assert "unread" in close.reason
    assert "after" in close.reason


EVERY_COLUMN = (
    "subscription($id: ID!) { runEvents(runId: $id) { __typename seq type payload createdAt } }"
)


async def _payloads(socket: GraphQLSocket, operation_id: str) -> list[Any]:
    """The operation's results until it completes, each as its JSON text says it (the keys in
    their order), from the raw messages."""
    found: list[Any] = []
    async with asyncio.timeout(20):
        while True:
            message = json.loads(await socket.connection.recv(), object_pairs_hook=list)
            fields = dict(message)
            if fields.get("id") != operation_id:
                continue
            if fields["type"] in ("complete", "error"):
                return found
            found.append(fields["payload"])


async def test_planned_events_are_sent_built_from_their_rows_as_an_execution_writes_them(
    database: Database, live_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In production no extension adds to a result, so a shared stream sends each event its
    plan covers without executing it (runql.fanout.streams.Lead.express): no per-event
    executor, and every member gets, key for key, what a subscriber executing alone gets."""
    executed = 0
    per_event = FastExecutor.build_per_event_executor

    def counted(self: FastExecutor, payload: Any) -> Any:
        nonlocal executed
        executed += 1
        return per_event(self, payload)

    monkeypatch.setattr(FastExecutor, "build_per_event_executor", counted)
    settings = live_settings.replace(env=Environment.PRODUCTION, workers=0)
    async with live_server(database, settings, "express") as live:
        key, streams = live.key, live.streams
        run_id = await live.create_run()
        protocols = [TRANSPORT_WS, LEGACY_WS, TRANSPORT_WS]
        members = [await GraphQLSocket.open(live.ws_url, key, protocol) for protocol in protocols]
        alone = await GraphQLSocket.open(live.ws_url, key)
        try:
            ids = [await member.start(EVERY_COLUMN, {"id": run_id}) for member in members]
            await _until(lambda: streams.member_count == len(members))
            executed = 0
            await _advance(live, run_id, messages=4)
            shared = [await _payloads(m, i) for m, i in zip(members, ids, strict=True)]
            assert executed == 0  # the stream's events went out built, not executed
            # after the run's end a subscriber reads the log and executes each event itself
            replayed = await _payloads(alone, await alone.start(EVERY_COLUMN, {"id": run_id}))
            assert executed == len(replayed)
        finally:
            await asyncio.gather(*(s.close() for s in [*members, alone]))
    assert len(replayed) == 7  # created, running, four messages, success
    for received in shared:
        assert received == replayed


async def test_where_extensions_add_to_results_each_event_is_executed(quiet_live: Live) -> None:
    """In development every result carries `extensions` (SqlStatistics, the executor report):
    a shared stream then executes each event, as a subscriber alone would."""
    live = quiet_live
    run_id = await live.create_run()
    members = [await GraphQLSocket.open(live.ws_url, live.key) for _ in range(2)]
    try:
        ids = [await member.start(EVERY_COLUMN, {"id": run_id}) for member in members]
        await _until(lambda: live.streams.member_count == len(members))
        await _advance(live, run_id, messages=2)
        shared = [await _payloads(m, i) for m, i in zip(members, ids, strict=True)]
    finally:
        await asyncio.gather(*(member.close() for member in members))
    for received in shared:
        assert len(received) == 5
        assert all("extensions" in dict(payload) for payload in received)
