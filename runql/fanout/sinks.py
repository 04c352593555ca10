"""Where a shared stream writes one subscriber's results: the operation on its socket, in the
frame its protocol uses. The websocket handlers below make each operation's sink known to the
resolvers that run inside it."""

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from runql.encoding import dumps_text

_current: ContextVar["Sink | None"] = ContextVar("runql_sink", default=None)

SERVER_SEND = "runql.server_send"


class KeepServerSend:
    """ASGI middleware, outermost: keeps the server's own `send` of each websocket in its scope.
    Shared streams write their frames with it, past the middleware layers, which only act on a
    socket's opening and closing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SERVER_SEND] = send
        await self.app(scope, receive, send)


def current_sink() -> "Sink | None":
    """The sink of the websocket operation being run, if any."""
    return _current.get()


def _socket(adapter: AsyncWebSocketAdapter) -> WebSocket:
    assert isinstance(adapter, ASGIWebSocketAdapter), "runql serves websockets over ASGI"
    socket = adapter.ws
    assert isinstance(socket, WebSocket)
    return socket


class Sink(ABC):
    """One subscription operation on one socket."""

    def __init__(self, query: str, operation_name: str | None,
                 variables: Mapping[str, object] | None) -> None:
        self.query = query
        self.operation_name = operation_name
        self.variables = variables

    @abstractmethod
    def is_live(self) -> bool:
        """Whether the client still waits for this operation's results."""

    @abstractmethod
    async def send(self, payload: str) -> None:
        """Write one result, given as the JSON text of its payload."""

    def backlog(self) -> int:
        """Bytes written to the socket that its client has not taken yet (0 when unknown)."""
        return 0

    @abstractmethod
    async def close(self, code: int, reason: str) -> None:
        """Close the socket: its client cannot keep up."""


class _SocketSink(Sink):
    def __init__(self, query: str, operation_name: str | None,
                 variables: Mapping[str, object] | None, socket: WebSocket, frame_start: str
                 ) -> None:
        super().__init__(query, operation_name, variables)
        self._send = socket.scope.get(SERVER_SEND) or socket.send
        self._frame_start = frame_start
        transport = getattr(getattr(self._send, "__self__", None), "transport", None)
        self._buffered = getattr(transport, "get_write_buffer_size", None)

    async def send(self, payload: str) -> None:
        await self._send({"type": "websocket.send", "text": f"{self._frame_start}{payload}}}"})

    def backlog(self) -> int:
        """What the server's transport holds for the socket (uvicorn's protocols keep it)."""
        return int(self._buffered()) if self._buffered is not None else 0

    async def close(self, code: int, reason: str) -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


def _json(value: str) -> str:
    return dumps_text(value)


class TransportWSSink(_SocketSink):
    """graphql-transport-ws: {"id": ..., "type": "next", "payload": ...}"""

    def __init__(self, handler: BaseGraphQLTransportWSHandler[object, None],
                 operation: Operation[object, None]) -> None:
        super().__init__(operation.query, operation.operation_name, operation.variables,
                         _socket(handler.websocket),
                         f'{{"id":{_json(operation.id)},"type":"next","payload":')
        self._handler = handler
        self._operation = operation

    def is_live(self) -> bool:
        operation = self._operation
        return (not operation.completed
                and self._handler.operations.get(operation.id) is operation)


class LegacyWSSink(_SocketSink):
    """graphql-ws (legacy): {"type": "data", "id": ..., "payload": ...}"""

    def __init__(self, handler: BaseGraphQLWSHandler[object, None], operation_id: str,
                 query: str, operation_name: str | None,
                 variables: Mapping[str, object] | None) -> None:
        super().__init__(query, operation_name, variables, _socket(handler.websocket),
                         f'{{"type":"data","id":{_json(operation_id)},"payload":')
        self._handler = handler
        self._operation_id = operation_id
        self._task = asyncio.current_task()

    def is_live(self) -> bool:
        return self._handler.tasks.get(self._operation_id) is self._task


class TransportWSHandler(BaseGraphQLTransportWSHandler[object, None]):
    async def run_operation(self, operation: Operation[object, None]) -> None:
        _current.set(TransportWSSink(self, operation))  # this operation's own task
        await super().run_operation(operation)


class LegacyWSHandler(BaseGraphQLWSHandler[object, None]):
    async def handle_async_results(self, operation_id: str, query: str,
                                   operation_name: str | None,
                                   variables: dict[str, object] | None) -> None:
        _current.set(LegacyWSSink(self, operation_id, query, operation_name, variables))
        await super().handle_async_results(operation_id, query, operation_name, variables)
