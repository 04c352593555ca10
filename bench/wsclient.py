"""A light graphql-transport-ws client for benchmarks with many sockets (bench/subscribers.py,
bench/stream.py): the `websockets` library's sans-I/O protocol in a plain asyncio Protocol,
each arrival stamped when its bytes reach the process.

While a `Window` is open a socket only stamps and keeps what arrives, parsing nothing
(thousands of sockets parsed as they arrive would measure this client's backlog, not the
server); the window counts the sockets that received a frame holding `until`, and everything
is parsed once it closes (or when a ping arrives, to answer it in time).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

# The first byte of a server's ping frame (FIN + opcode 9). The server (uvicorn) pings every
# socket every 20 s and closes one whose pong is 20 s late: a socket whose window outlasts that
# would be closed, its `complete` never come (and the window never end), were its bytes only
# parsed when the window closes. The benchmark's frames hold ASCII JSON, so the byte is a ping's
# or, now and then, part of a frame's length: a false alarm only parses early what would be
# parsed anyway (each arrival keeps the stamp it got when its bytes came).
PING_BYTE = b"\x89"


class Window:
    """A measurement: until every socket has received a frame holding `until`."""

    def __init__(self, sockets: int, until: bytes = b'"next"') -> None:
        self.waiting = sockets
        self.until = until
        self.done = asyncio.Event()

    def heard(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.done.set()


class Subscriber(asyncio.Protocol):
    """One graphql-transport-ws socket. `arrivals` holds (arrival, the `data` of a `next`
    message), stamped by `clock` (time.time by default)."""

    def __init__(self, uri: str, key: str, clock: Callable[[], float] = time.time) -> None:
        self._ws = ClientProtocol(
            parse_uri(uri), subprotocols=[Subprotocol("graphql-transport-ws")]
        )
        self._key = key
        self._clock = clock
        self._transport: asyncio.Transport | None = None
        self.acknowledged = asyncio.get_running_loop().create_future()
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.completed = asyncio.Event()
        self._window: Window | None = None
        self._kept: list[tuple[float, bytes]] = []
        self._heard = False
        self._arrived = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._ws.send_request(self._ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        arrived = self._clock()
        if self._window is None:
            self._receive(arrived, data)
            return
        self._kept.append((arrived, data))
        self._arrived = True
        if not self._heard and self._window.until in data:
            self._heard = True
            self._window.heard()
        if PING_BYTE in data:  # perhaps a ping: parsed now, so that its pong is not late
            self._parse_kept()

    @property
    def heard(self) -> bool:
        """Whether anything arrived while the window is open."""
        return self._arrived

    def open_window(self, window: Window) -> None:
        self._window, self._heard, self._arrived = window, False, False

    def close_window(self) -> None:
        self._window = None
        self._parse_kept()

    def _parse_kept(self) -> None:
        kept, self._kept = self._kept, []
        for arrived, data in kept:
            self._receive(arrived, data)

    def _receive(self, arrived: float, data: bytes) -> None:
        self._ws.receive_data(data)
        for event in self._ws.events_received():
            if isinstance(event, Response):
                if event.status_code != 101:
                    self.acknowledged.set_exception(RuntimeError(f"upgrade: {event.status_code}"))
                    continue
                self.send(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {self._key}"}}
                )
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._on_message(json.loads(bytes(event.data)), arrived)
        self._flush()  # pongs

    def _on_message(self, message: dict[str, Any], arrived: float) -> None:
        kind = message["type"]
        if kind == "connection_ack":
            self.acknowledged.set_result(None)
        elif kind == "next":
            self.arrivals.append((arrived, message["payload"]["data"]))
        elif kind == "complete":
            self.completed.set()
        elif kind == "error":
            raise RuntimeError(f"the subscription failed: {message}")
        elif kind == "ping":
            self.send({"type": "pong"})

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.acknowledged.done():
            self.acknowledged.set_exception(exc or ConnectionError("closed"))

    def send(self, message: dict[str, Any]) -> None:
        self._ws.send_text(json.dumps(message).encode())
        self._flush()

    def subscribe(self, operation_id: str, query: str, variables: dict[str, Any]) -> None:
        self.arrivals.clear()
        self.completed.clear()
        self.send(
            {
                "id": operation_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables},
            }
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _flush(self) -> None:
        assert self._transport is not None
        for chunk in self._ws.data_to_send():
            if chunk:
                self._transport.write(chunk)


async def open_subscriber(
    host: str, port: int, key: str, clock: Callable[[], float] = time.time
) -> Subscriber:
    """A socket to `ws://host:port/graphql`, acknowledged."""
    loop = asyncio.get_running_loop()
    _transport, subscriber = await loop.create_connection(
        lambda: Subscriber(f"ws://{host}:{port}/graphql", key, clock), host, port
    )
    await asyncio.wait_for(subscriber.acknowledged, 60)
    return subscriber
