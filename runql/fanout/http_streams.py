"""Subscriptions over plain HTTP, for clients that cannot or will not open a websocket:

- Apollo Client's multipart protocol (its HttpLink sends subscriptions this way): a POST with
  `Accept: multipart/mixed;subscriptionSpec="1.0"`, answered with `multipart/mixed` parts
  `{"payload": <result>}` under the boundary `graphql`, a `{}` part every 5 s to keep the
  connection open, and `--graphql--` at the end;
- graphql-sse in its distinct connections mode: a POST (or GET) with `Accept:
  text/event-stream`, answered with `next` events, each one result, then `complete`; errors
  found before execution come as a `next` event in a 200 stream, as the protocol asks.

strawberry's view speaks both (runql/endpoint.py turns them on); this module holds what runql
adds: the Accept header routes a request to them before the fast lane; a page on another origin
is refused (403) unless RUNQL_ALLOWED_ORIGINS lists it, the rule websocket handshakes follow;
the open streams are a gauge. The API key, rate limit and body cap are the edge's
(runql/edge.py), as on every request, and so are the request's metrics and its access line,
written when the stream ends. Each request carries one operation, so the websockets' limit of
operations per connection holds by itself. A client that disconnects ends its stream at once:
the operation is cancelled, which takes it off the hub (runql/bus/hub.py). HTTP subscribers
run their own execution: shared streams (runql/fanout/streams.py) write to websockets only.
"""

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.http.parse_content_type import parse_content_type
from strawberry.http.streaming import (
    HTTPStreamTransport,
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

from runql.operations import metrics
from runql.security.media import negotiate
from runql.security.over_http import GraphQLOverHTTP
from runql.security.responses import graphql_error_response

log = logging.getLogger("runql.fanout")

PROTOCOLS = (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL,
             GRAPHQL_SSE_PROTOCOL)  # the order in which an Accept header is tried
FORBIDDEN_ORIGIN = "FORBIDDEN_ORIGIN"
MULTIPART = "multipart"
SSE = "graphql-sse"


class MultipartSubscriptions(MultipartSubscriptionTransport):
    """Apollo's multipart protocol, for an Accept header that names it anywhere in its list
    (strawberry reads the whole header as one media type)."""

    def accepts(self, accept: str) -> bool:
        return any(self.accepts_content_type(*parse_content_type(part))
                   for part in _media_ranges(accept))


TRANSPORTS: Mapping[str, type[HTTPStreamTransport]] = {
    MULTIPART_SUBSCRIPTION_PROTOCOL: MultipartSubscriptions,
    GRAPHQL_SSE_PROTOCOL: SSETransport,
}
_LABELS: Mapping[str, str] = {"multipart/mixed": MULTIPART, "text/event-stream": SSE}


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


def accept_of(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"accept":
            return str(value.decode("latin-1"))
    return ""


OriginAllowed = Callable[[Any, str], bool]  # the view's rule takes its request as given


def origin_refusal(request: Request, allowed: OriginAllowed) -> Response | None:
    """A 403 for a page on another origin that RUNQL_ALLOWED_ORIGINS does not list; None for
    clients that send no Origin (not browsers), the same origin, and the origins listed.
    `allowed` is the view's rule for websocket handshakes, so both transports follow one."""
    origin = request.headers.get("origin")
    if (origin is None or request.headers.get("sec-fetch-site") == "same-origin"
            or is_same_origin(origin, request.headers.get("host")) or allowed(request, origin)):
        return None
    log.warning("refused a subscription over HTTP from origin %r", origin)
    return graphql_error_response(
        403, FORBIDDEN_ORIGIN, f"pages on {origin} may not subscribe here: list the origin in "
        "RUNQL_ALLOWED_ORIGINS", media_type=negotiate(request.headers.get("accept")))


def protocol_label(headers: Mapping[str, str]) -> str:
    content_type = next((value for name, value in headers.items()
                         if name.lower() == "content-type"), "")
    return _LABELS.get(parse_content_type(content_type)[0], MULTIPART)


def observed(stream: Callable[[], AsyncIterator[str]], protocol: str
             ) -> Callable[[], AsyncGenerator[str, None]]:
    """The stream, counted in the open-streams gauge while it is written."""

    async def counted() -> AsyncGenerator[str, None]:
        metrics.http_stream_opened(protocol)
        try:
            async for chunk in stream():
                yield chunk
        finally:
            metrics.http_stream_closed(protocol)

    return counted


class GraphQLOverHTTPStreams(GraphQLOverHTTP[Context, RootValue]):
    """The view with both HTTP subscription protocols; the endpoint routes a request here by
    its Accept header (`wants_stream`) before its fast lane, which answers plain JSON only."""

    stream_transport_classes_by_protocol = TRANSPORTS

    def wants_stream(self, scope: Scope) -> bool:
        return self._get_stream_transport_from_headers({"accept": accept_of(scope)}) is not None

    async def serve_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = origin_refusal(Request(scope), self.is_websocket_origin_allowed)
        if refusal is not None:
            await refusal(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def create_streaming_response(
        self, request: Request | WebSocket, stream: Callable[[], AsyncIterator[str]],
        sub_response: Response, headers: Mapping[str, str]
    ) -> Response:
        return await super().create_streaming_response(
            request, observed(stream, protocol_label(headers)), sub_response, headers)
