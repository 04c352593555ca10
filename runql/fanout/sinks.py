"""Where a shared stream writes one subscriber's results: the operation on its socket, in the
frame its protocol uses. The websocket handlers below make each operation's sink known to the
resolvers that run inside it, hold their socket under its API key (a revoked key closes it,
4403), and answer the protocols' limits with codes:

- graphql-transport-ws: a message whose `id` is not a string closes with 4400;
- legacy graphql-ws: no `connection_init` in RUNQL_WS_INIT_TIMEOUT_SECONDS is a
  `connection_error` and a close with 4408, as on graphql-transport-ws; `start` runs any
  operation (a query or mutation answers one `data`, then `complete`);
- on both, an operation over RUNQL_WS_MAX_SUBSCRIPTIONS is an error `TOO_MANY_SUBSCRIPTIONS`.

Why strawberry-graphql is pinned exactly (pyproject.toml): these handlers subclass its protocol
handlers' internals, which change without notice between releases. They override `handle`,
`handle_message`, `handle_connection_init`, `handle_subscribe`/`handle_start`, `run_operation`
and `handle_async_results`, call `handle_invalid_message`, `cleanup_operation`, `cleanup` and
`send_data_message`, and read the handlers' state (`operations`, `tasks`, `subscriptions`,
`connection_acknowledged`, `max_subscriptions_per_connection`,
`view.connection_init_wait_timeout`, `ASGIWebSocketAdapter.ws`); runql/endpoint.py plugs them
in as `graphql_transport_ws_handler_class` and `graphql_ws_handler_class`. Less deeply:
runql/security/over_http.py overrides the ASGI view's `parse_http_body`, `decode_json`,
`execute_single`, `get_sub_response`, `process_result` and `create_response`, and the fast path
uses `StrawberryGraphQLCoreExecutionContext`, `validate_document` and `convert_arguments`.
To move the pin: change it (and graphql-core's range to the one the new release requires),
reinstall, read the diff of strawberry's `subscriptions/protocols/*/handlers.py`,
`asgi/__init__.py` and `http/async_base_view.py` for the names above, then run `mypy runql`
(the overrides' signatures) and the tests that catch a break: tests/subscriptions (close codes,
limits, legacy graphql-ws, revocation, the npm reference clients), tests/fanout,
tests/hardening (test_over_http, test_graphql_http_audit, test_malformed_bodies, test_streams)
and tests/fastpath (the fast path against strawberry's executor).

Past uvicorn: on uvicorn's websockets-sansio protocol (its default with `websockets` installed)
without permessage-deflate, a shared stream's result is written as a whole text frame, built
once per result and message start (`Encoded.frame`), straight to the connection's transport,
while the connection is open and no close was sent; that is what the protocol's own `send`
writes for the same text (tests/subscriptions/test_frames.py compares them), without a
frame object, an encode and a join per socket. It reads the protocol's `conn` (`state`,
`extensions`), `close_sent` and `transport`. Any other server, protocol or state takes the
server's `send`.
"""

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, cast

from graphql import GraphQLError
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage,
    OperationMessage,
    StartMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from runql.encoding import dumps
from runql.fanout.sockets import REVOKED_CLOSE_CODE, REVOKED_REASON, OpenSockets, Revocable
from runql.security.errors import TOO_MANY_SUBSCRIPTIONS

log = logging.getLogger("runql.fanout")

INIT_TIMEOUT_CLOSE_CODE = 4408
INIT_TIMEOUT_REASON = "Connection initialisation timeout"
MALFORMED = (
    "a graphql-ws message is an object with a `type`; `start` needs an `id` and a "
    "`payload` with a `query`"
)

_current: ContextVar["Sink | None"] = ContextVar("runql_sink", default=None)

SERVER_SEND = "runql.server_send"  # the server's own `send` of a websocket (runql/edge.py):
# shared streams write their frames with it, past the layers that act on opening and closing


def current_sink() -> "Sink | None":
    """The sink of the websocket operation being run, if any."""
    return _current.get()


def _socket(adapter: AsyncWebSocketAdapter) -> WebSocket:
    assert isinstance(adapter, ASGIWebSocketAdapter), "runql serves websockets over ASGI"
    socket = adapter.ws
    assert isinstance(socket, WebSocket)
    return socket


TEXT_FRAME = 0x81  # FIN and the text opcode; a server's frames are not masked


def text_frame(message: bytes) -> bytes:
    """A whole, unmasked websocket text frame holding `message` (UTF-8), as RFC 6455 lays it
    out: the length in 7 bits, or 126 and 16 bits, or 127 and 64 bits."""
    size = len(message)
    if size < 126:
        return bytes((TEXT_FRAME, size)) + message
    if size < 1 << 16:
        return bytes((TEXT_FRAME, 126)) + size.to_bytes(2, "big") + message
    return bytes((TEXT_FRAME, 127)) + size.to_bytes(8, "big") + message


class Encoded:
    """One result of a shared stream, encoded once for all its members: the JSON of its
    payload, and each message made of it by a message start (the members on one protocol with
    the same operation id share one), as text for the server's `send` or as a whole frame."""

    __slots__ = ("_frames", "_texts", "payload")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self._texts: dict[bytes, str] = {}
        self._frames: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self.payload)

    def text(self, start: bytes) -> str:
        found = self._texts.get(start)
        if found is None:
            found = self._texts[start] = (start + self.payload + b"}").decode()
        return found

    def frame(self, start: bytes) -> bytes:
        found = self._frames.get(start)
        if found is None:
            found = self._frames[start] = text_frame(start + self.payload + b"}")
        return found


class Joined:
    """Results sent together: their frames written as one (`Encoded.frame`'s, joined)."""

    __slots__ = ("_frames", "parts")

    def __init__(self, parts: list[Encoded]) -> None:
        self.parts = parts
        self._frames: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def frame(self, start: bytes) -> bytes:
        found = self._frames.get(start)
        if found is None:
            found = self._frames[start] = b"".join(part.frame(start) for part in self.parts)
        return found


class Sink(ABC):
    """One subscription operation on one socket."""

    def __init__(
        self, query: str, operation_name: str | None, variables: Mapping[str, object] | None
    ) -> None:
        self.query = query
        self.operation_name = operation_name
        self.variables = variables

    @abstractmethod
    def is_live(self) -> bool:
        """Whether the client still waits for this operation's results."""

    @abstractmethod
    async def send(self, result: Encoded) -> None:
        """Write one result."""

    def write_now(self, result: Encoded | Joined) -> bool:
        """Write one result (or several, together) at once, without waiting, if this sink
        can; False if it cannot (then `send` writes each)."""
        return False

    @property
    def writes_frames(self) -> bool:
        """Whether `write_now` writes whole frames past the server's `send`."""
        return False

    def backlog(self) -> int:
        """Bytes written to the socket that its client has not taken yet (0 when unknown)."""
        return 0

    @abstractmethod
    async def close(self, code: int, reason: str) -> None:
        """Close the socket: its client cannot keep up."""


def _past_server(send: object) -> WebSocketsSansIOProtocol | None:
    """The connection whose transport takes whole frames (see the module's note), if any."""
    protocol = getattr(send, "__self__", None)
    if isinstance(protocol, WebSocketsSansIOProtocol) and not protocol.conn.extensions:
        return protocol
    return None


class _SocketSink(Sink):
    def __init__(
        self,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, object] | None,
        socket: WebSocket,
        message_start: bytes,
    ) -> None:
        super().__init__(query, operation_name, variables)
        self._send = socket.scope.get(SERVER_SEND) or socket.send
        self._start = message_start
        self._protocol = _past_server(self._send)
        transport = getattr(getattr(self._send, "__self__", None), "transport", None)
        self._buffered = getattr(transport, "get_write_buffer_size", None)

    async def send(self, result: Encoded) -> None:
        await self._send({"type": "websocket.send", "text": result.text(self._start)})

    @property
    def writes_frames(self) -> bool:
        return self._protocol is not None

    def write_now(self, result: Encoded | Joined) -> bool:
        protocol = self._protocol
        if protocol is None or protocol.close_sent or protocol.conn.state is not State.OPEN:
            return False
        transport = protocol.transport
        if transport.is_closing():
            return False
        transport.write(result.frame(self._start))
        return True

    def backlog(self) -> int:
        """What the server's transport holds for the socket (uvicorn's protocols keep it)."""
        return int(self._buffered()) if self._buffered is not None else 0

    async def close(self, code: int, reason: str) -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


def _json(value: str) -> bytes:
    return dumps(value)


class TransportWSSink(_SocketSink):
    """graphql-transport-ws: {"id": ..., "type": "next", "payload": ...}"""

    def __init__(
        self,
        handler: BaseGraphQLTransportWSHandler[object, None],
        operation: Operation[object, None],
    ) -> None:
        super().__init__(
            operation.query,
            operation.operation_name,
            operation.variables,
            _socket(handler.websocket),
            b'{"id":' + _json(operation.id) + b',"type":"next","payload":',
        )
        self._handler = handler
        self._operation = operation

    def is_live(self) -> bool:
        operation = self._operation
        return not operation.completed and self._handler.operations.get(operation.id) is operation


class LegacyWSSink(_SocketSink):
    """graphql-ws (legacy): {"type": "data", "id": ..., "payload": ...}"""

    def __init__(
        self,
        handler: BaseGraphQLWSHandler[object, None],
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, object] | None,
    ) -> None:
        super().__init__(
            query,
            operation_name,
            variables,
            _socket(handler.websocket),
            b'{"type":"data","id":' + _json(operation_id) + b',"payload":',
        )
        self._handler = handler
        self._operation_id = operation_id
        self._task = asyncio.current_task()

    def is_live(self) -> bool:
        return self._handler.tasks.get(self._operation_id) is self._task


def _too_many(maximum: int) -> GraphQLError:
    return GraphQLError(
        f"Subscription limit reached: at most {maximum} operations run at once on a websocket",
        extensions={"code": TOO_MANY_SUBSCRIPTIONS, "maximum": maximum},
    )


def _over_limit(running: int, maximum: int | None) -> bool:
    return maximum is not None and running >= maximum


def _hold(view: object, context: object, socket: Revocable) -> None:
    """Hold the socket under the key it authenticated with (the endpoint's open sockets)."""
    sockets, key_id = getattr(view, "open_sockets", None), getattr(context, "key_id", None)
    if isinstance(sockets, OpenSockets) and isinstance(key_id, str) and key_id:
        sockets.hold(key_id, socket)


def _release(view: object, context: object, socket: Revocable) -> None:
    sockets, key_id = getattr(view, "open_sockets", None), getattr(context, "key_id", None)
    if isinstance(sockets, OpenSockets) and isinstance(key_id, str):
        sockets.release(key_id, socket)


class TransportWSHandler(BaseGraphQLTransportWSHandler[object, None]):
    async def handle(self) -> None:
        try:
            await super().handle()
        finally:
            _release(self.view, self.context, self)

    async def handle_message(self, message: Message) -> None:
        given: object = message
        if not isinstance(given, Mapping):  # 1, [], "ping", null: JSON, but no message
            await self.handle_invalid_message("a message is a JSON object with a `type`")
            return
        if "id" in given and not isinstance(given["id"], str):
            await self.handle_invalid_message("a message's `id` must be a string")
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            _hold(self.view, self.context, self)

    async def handle_subscribe(self, message: Any) -> None:
        maximum = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and message["id"] not in self.operations
            and _over_limit(len(self.operations), maximum)
        ):
            assert maximum is not None
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [_too_many(maximum).formatted]}
            )
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[object, None]) -> None:
        _current.set(TransportWSSink(self, operation))  # this operation's own task
        await super().run_operation(operation)

    async def close_revoked(self) -> None:
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        await self.websocket.close(REVOKED_CLOSE_CODE, REVOKED_REASON)


class LegacyWSHandler(BaseGraphQLWSHandler[object, None]):
    _init_received = False

    async def handle(self) -> None:
        timeout = asyncio.create_task(self._close_without_init(), name="runql-ws-init-timeout")
        try:
            await super().handle()
        finally:
            timeout.cancel()
            with contextlib.suppress(BaseException):
                await timeout
            _release(self.view, self.context, self)

    async def _close_without_init(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if self._init_received:
            return
        await self.send_message(
            {
                "type": "connection_error",
                "payload": {"message": INIT_TIMEOUT_REASON, "code": "CONNECTION_INIT_TIMEOUT"},
            }
        )
        await self.websocket.close(code=INIT_TIMEOUT_CLOSE_CODE, reason=INIT_TIMEOUT_REASON)

    async def handle_message(self, message: OperationMessage) -> None:
        """A message without the fields its type needs is an `error` (the protocol has no
        close code for it), not a failure of the socket."""
        try:
            await super().handle_message(message)
        except (KeyError, TypeError, AttributeError):
            given = message.get("id") if isinstance(message, Mapping) else None
            await self.send_message(
                cast(
                    OperationMessage,
                    {
                        "type": "error",
                        "id": given if isinstance(given, str) else None,
                        "payload": {"message": MALFORMED, "extensions": {"code": "BAD_REQUEST"}},
                    },
                )
            )

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        self._init_received = True
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            _hold(self.view, self.context, self)

    async def handle_start(self, message: StartMessage) -> None:
        maximum = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and message["id"] not in self.tasks
            and _over_limit(len(self.tasks), maximum)
        ):
            assert maximum is not None
            await self.send_message(
                cast(
                    OperationMessage,
                    {"type": "error", "id": message["id"], "payload": _too_many(maximum).formatted},
                )
            )
            return
        await super().handle_start(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        """Any operation (strawberry's runs subscriptions only); a task of its own, which ends
        without an error when its client has gone."""
        _current.set(LegacyWSSink(self, operation_id, query, operation_name, variables))
        try:
            await self._send_results(operation_id, query, operation_name, variables)
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # stopped by the client, or it has gone
                await self.send_message({"type": "complete", "id": operation_id})
        except Exception:
            if self._connected():
                log.exception("a graphql-ws operation failed")
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)

    async def _send_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        source = await self.schema.stream(
            query,
            variable_values=variables,
            operation_name=operation_name,
            context_value=self.context,
            root_value=self.root_value,
        )
        self.subscriptions[operation_id] = source
        first = True
        async with contextlib.aclosing(source):
            async for result in source:
                if first and isinstance(result, PreExecutionError):
                    assert result.errors
                    await self.send_message(
                        {"type": "error", "id": operation_id, "payload": result.errors[0].formatted}
                    )
                    return
                if not isinstance(result, ExecutionResult):  # @defer/@stream frames
                    error = GraphQLError("Incremental delivery is not supported over graphql-ws")
                    await self.send_message(
                        {"type": "error", "id": operation_id, "payload": error.formatted}
                    )
                    return
                await self.send_data_message(result, operation_id)
                first = False

    def _connected(self) -> bool:
        socket = _socket(self.websocket)
        return (
            socket.client_state is WebSocketState.CONNECTED
            and socket.application_state is WebSocketState.CONNECTED
        )

    async def close_revoked(self) -> None:
        await self.cleanup()
        await self.websocket.close(REVOKED_CLOSE_CODE, REVOKED_REASON)
