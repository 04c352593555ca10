"""Subscriptions over plain HTTP, for clients that cannot or will not open a websocket:

- Apollo Client's multipart protocol (its HttpLink sends subscriptions this way): a POST with
  `Accept: multipart/mixed;subscriptionSpec="1.0"`, answered with `multipart/mixed` parts
  `{"payload": <result>}` under the boundary `graphql`, a `{}` part every 5 s to keep the
  connection open, and `--graphql--` at the end;
- graphql-sse in its distinct connections mode: a POST (or GET) with `Accept:
  text/event-stream`, answered with `next` events, each one result, then `complete`; errors
  found before execution come as a `next` event in a 200 stream, as the protocol asks.

strawberry's view speaks both (runql/endpoint.py turns them on); this module holds what runql
adds:
- the Accept header routes a request to them before the fast lane: one that names the
  multipart protocol anywhere in its list, or prefers `text/event-stream` to anything else
  (a client that lists JSON first, as urql does for its queries, gets JSON);
- a page on another origin is refused (403 FORBIDDEN_ORIGIN) unless RUNQL_ALLOWED_ORIGINS lists
  it: the rule websocket handshakes follow;
- an open stream is held under its API key as a websocket is: revoking the key ends it with an
  UNAUTHENTICATED error; the open streams are a gauge (runql_http_streams_open).

The key (401 without one), rate limit and body cap are the edge's (runql/edge.py) as on every
request, and so are the request's metrics and its access line, written when the stream ends;
query limits are the schema's. A request carries one operation, so the websockets' limit of
operations per connection holds by itself. A client that disconnects ends its stream at once:
its operation is cancelled, which takes it off the hub (runql/bus/hub.py). HTTP subscribers
run their own execution: shared streams (runql/fanout/streams.py) write to websockets only.
"""

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.http import GraphQLHTTPResponse
from strawberry.http.parse_content_type import parse_content_type
from strawberry.http.streaming import (
    HTTPStreamTransport,
    JSONEncoder,
    MultipartSubscriptionTransport,
    SSETransport,
)
from strawberry.http.typevars import Context, RootValue
from strawberry.http.websocket_origin import is_same_origin
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)

from runql.auth.asgi import principal_of
from runql.fanout.sockets import REVOKED_REASON, OpenSockets
from runql.operations import metrics
from runql.security.media import HEADER_VALUES, negotiate
from runql.security.over_http import GraphQLOverHTTP
from runql.security.responses import graphql_error_response

log = logging.getLogger("runql.fanout")

PROTOCOLS = (
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
    GRAPHQL_SSE_PROTOCOL,
)  # the order in which an Accept header is tried
FORBIDDEN_ORIGIN = "FORBIDDEN_ORIGIN"
MULTIPART = "multipart"
SSE = "graphql-sse"


class MultipartSubscriptions(MultipartSubscriptionTransport):
    """Apollo's multipart protocol, for an Accept header that names it anywhere in its list
    (strawberry reads the whole header as one media type)."""

    def accepts(self, accept: str) -> bool:
        return any(
            self.accepts_content_type(*parse_content_type(part)) for part in _media_ranges(accept)
        )


class EventStreams(SSETransport):
    """graphql-sse, for a client that prefers `text/event-stream` to every other media type:
    strawberry takes any Accept list that names it, and so would stream the queries of clients
    that list it after JSON (urql does), which then miss the fast lane."""

    def accepts(self, accept: str) -> bool:
        ranked = [
            (_quality(params), -index, media_type)
            for index, (media_type, params) in enumerate(
                map(parse_content_type, _media_ranges(accept))
            )
        ]
        return bool(ranked) and max(ranked)[2] == "text/event-stream"


def _quality(params: Mapping[str, str]) -> float:
    try:
        return float(params.get("q", "1"))
    except ValueError:
        return 0.0


TRANSPORTS: Mapping[str, type[HTTPStreamTransport]] = {
    MULTIPART_SUBSCRIPTION_PROTOCOL: MultipartSubscriptions,
    GRAPHQL_SSE_PROTOCOL: EventStreams,
}
LABELS: Mapping[str, str] = {MultipartSubscriptions.protocol: MULTIPART, EventStreams.protocol: SSE}


def _media_ranges(accept: str) -> list[str]:
    """The media ranges of an Accept header: commas inside quotes do not separate them."""
    ranges: list[str] = []
    current: list[str] = []
    quoted = False
    for char in accept:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            ranges.append("".join(current))
            current = []
        else:
            current.append(char)
    ranges.append("".join(current))
    return [found.strip() for found in ranges if found.strip()]


OriginAllowed = Callable[[Any, str], bool]  # the view's rule takes its request as given


def origin_refusal(request: Request, allowed: OriginAllowed) -> Response | None:
    """A 403 for a page on another origin that RUNQL_ALLOWED_ORIGINS does not list; None for
    clients that send no Origin (not browsers), the same origin, and the origins listed.
    `allowed` is the view's rule for websocket handshakes, so both transports follow one."""
    origin = request.headers.get("origin")
    if (
        origin is None
        or request.headers.get("sec-fetch-site") == "same-origin"
        or is_same_origin(origin, request.headers.get("host"))
        or allowed(request, origin)
    ):
        return None
    log.warning("refused a subscription over HTTP from origin %r", origin)
    return graphql_error_response(
        403,
        FORBIDDEN_ORIGIN,
        f"pages on {origin} may not subscribe here: list the origin in RUNQL_ALLOWED_ORIGINS",
        media_type=negotiate(request.headers.get("accept")),
    )


def revoked_ending(transport: HTTPStreamTransport, encode_json: JSONEncoder) -> str:
    """The last frames of a stream whose key was revoked: an error, then the end. Apollo's
    protocol carries it as a transport error (`payload` null), graphql-sse as a `next`."""
    errors = [{"message": REVOKED_REASON, "extensions": {"code": "UNAUTHENTICATED"}}]
    if isinstance(transport, MultipartSubscriptionTransport):
        ending = transport.encode_multipart_data({"payload": None, "errors": errors}, encode_json)
    else:
        ending = transport.encode_next(cast(GraphQLHTTPResponse, {"errors": errors}), encode_json)
    return ending + transport.encode_complete()


class OpenStream:
    """One subscription stream over HTTP while it is written: counted in the open-streams gauge
    and held under its API key as a websocket is (runql/fanout/sockets.py), so that revoking the
    key ends it with an error that says so."""

    def __init__(self, protocol: str, ending: str) -> None:
        self.protocol = protocol
        self._ending = ending
        self._revoked = asyncio.Event()

    async def close_revoked(self) -> None:
        self._revoked.set()

    async def write(self, stream: AsyncIterator[str]) -> AsyncGenerator[str, None]:
        """The stream's chunks, until it ends or the key is revoked. Each chunk is awaited in a
        task of its own, so that a revocation can stop the wait; a client that leaves cancels
        the chunk it waits for, which cancels the operation."""
        metrics.http_stream_opened(self.protocol)
        revoked = asyncio.ensure_future(self._revoked.wait())
        step: asyncio.Future[str] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(stream))
                await asyncio.wait((step, revoked), return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    yield self._ending
                    return
                try:
                    chunk = step.result()
                except StopAsyncIteration:
                    return
                yield chunk
        finally:
            revoked.cancel()
            if step is not None:
                step.cancel()  # not awaited: its own finally frees the operation
            metrics.http_stream_closed(self.protocol)


class GraphQLOverHTTPStreams(GraphQLOverHTTP[Context, RootValue]):
    """The view with both HTTP subscription protocols; the endpoint routes a request here by
    its Accept header (`wants_stream`) before its fast lane, which answers plain JSON only."""

    stream_transport_classes_by_protocol = TRANSPORTS
    open_sockets: OpenSockets | None = None  # the endpoint's, which revocations reach

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wanted: dict[str, bool] = {}  # wants_stream's answer per Accept value

    def wants_stream(self, accept: str | None) -> bool:
        """Whether an Accept value asks for a stream, remembered per value (clients send a
        few, every request one; strawberry parses it anew each time)."""
        value = accept or ""
        known = self._wanted.get(value)
        if known is None:
            known = self._transport_of(value) is not None
            if len(self._wanted) < HEADER_VALUES:
                self._wanted[value] = known
        return known

    def _transport_of(self, accept: str) -> HTTPStreamTransport | None:
        return self._get_stream_transport_from_headers({"accept": accept})

    async def serve_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = origin_refusal(Request(scope), self.is_websocket_origin_allowed)
        if refusal is not None:
            await refusal(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def create_streaming_response(
        self,
        request: Request | WebSocket,
        stream: Callable[[], AsyncIterator[str]],
        sub_response: Response,
        headers: Mapping[str, str],
    ) -> Response:
        transport = self._transport_of(request.headers.get("accept", ""))
        principal = principal_of(request.scope)
        if transport is None or principal is None:  # not a subscription stream
            return await super().create_streaming_response(request, stream, sub_response, headers)
        held = OpenStream(
            LABELS[transport.protocol], revoked_ending(transport, self.encode_json_string)
        )

        async def written() -> AsyncGenerator[str, None]:
            if self.open_sockets is not None:
                self.open_sockets.hold(principal.key_id, held)
            try:
                async for chunk in held.write(stream()):
                    yield chunk
            finally:
                if self.open_sockets is not None:
                    self.open_sockets.release(principal.key_id, held)

        return await super().create_streaming_response(request, written, sub_response, headers)
