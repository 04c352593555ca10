"""The edge: the fixed per-request work of the HTTP layer as one plain ASGI layer, done once
per request, between Starlette's ServerErrorMiddleware (masked 500s) and its router.

For an HTTP request, in order: one pass over its headers for the few the edge reads; the
request record and id (echoed in X-Request-ID); the API key (runql/auth/asgi.py: 401), its rate
limit (runql/security/ratelimit.py: 429) and the body cap (runql/security/body.py: 413); then the
route, through one `send` wrapper; then the metrics and the access line
(runql/operations/observe.py). A request that `runql serve`'s wire (runql/wire.py) admitted
and passed on carries a Tried: the edge keeps its record and admits it no second time. For a
websocket: the server's own `send`, kept in the scope for shared streams
(runql/fanout/sinks.py), the open-socket gauge and the access line.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runql.auth.asgi import KeyGate, refuse_unauthenticated
from runql.fanout.sinks import SERVER_SEND
from runql.operations.observe import (
    observe_http,
    observe_websocket_accepted,
    observe_websocket_closed,
    with_request_id,
)
from runql.operations.requests import (
    CURRENT_REQUEST,
    REQUEST_ID_HEADER,
    RequestRecord,
    request_id_from,
    serving,
)
from runql.security.body import BodyCap, BodyTooLarge
from runql.security.ratelimit import RateLimits, refuse_rate

TRIED = "runql.tried"  # in the scope of a request the wire admitted and passed on: a Tried


@dataclass(slots=True)
class Tried:
    """What the wire (runql/wire.py) did for a request it admitted (its key checked, its
    rate-limit token taken) but did not answer: the edge keeps its record and clock and does
    not admit it again."""

    record: RequestRecord
    started: float


@dataclass(slots=True)
class EdgeHeaders:
    """The request headers the edge reads (each one's first value)."""

    authorization: str | None = None
    accept: str | None = None
    content_type: str | None = None
    content_length: str | None = None
    request_id: str | None = None
    forwarded: str | None = None  # X-Forwarded-For or X-Forwarded-Proto (the wire's question)


_READ = {
    b"authorization": "authorization",
    b"accept": "accept",
    b"content-type": "content_type",
    b"content-length": "content_length",
    REQUEST_ID_HEADER.encode(): "request_id",
    b"x-forwarded-for": "forwarded",
    b"x-forwarded-proto": "forwarded",
}


def read_headers(scope: Scope) -> EdgeHeaders:
    """One pass over the request's headers (their names are lower case in ASGI)."""
    found = EdgeHeaders()
    for name, value in scope["headers"]:
        field = _READ.get(name)
        if field is not None and getattr(found, field) is None:
            setattr(found, field, value.decode("latin-1"))
    return found


# A route's handler that may answer a request before the router (None: answered), or else
# gives the `receive` the route must read (runql.endpoint.GraphQLEndpoint.lane_first); it is
# given the request's Accept and Content-Type, as the edge read them.
First = Callable[[Scope, Receive, Send, tuple[str | None, str | None]], Awaitable[Receive | None]]


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        gate: KeyGate,
        limits: RateLimits,
        body: BodyCap,
        first: tuple[Route, First] | None = None,
    ) -> None:
        self.app = app
        self.gate = gate
        self.limits = limits
        self.body = body
        self.first = first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = read_headers(scope)
        tried: Tried | None = scope.get(TRIED)
        if tried is None:
            record = RequestRecord(request_id_from(headers.request_id))
            started = time.perf_counter()
        else:
            record, started = tried.record, tried.started
        status = 0  # none sent yet; an exception becomes a 500 further out

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = with_request_id(message, record.request_id)
            await send(message)

        serving = CURRENT_REQUEST.set(record)  # as `with serving(record)`, for less per request
        try:
            await self._guarded(scope, receive, send_observed, headers, tried is None)
        except BodyTooLarge:
            if status:
                raise
            await self.body.refuse(scope, receive, send_observed, headers.accept)
        finally:
            try:
                observe_http(scope, record, status or 500, time.perf_counter() - started)
            finally:
                CURRENT_REQUEST.reset(serving)

    async def _guarded(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: EdgeHeaders,
        admit: bool,
    ) -> None:
        """The route, for a request with the key, rate and body its path needs (`admit`: not
        yet checked); raises BodyTooLarge for a body over the cap."""
        if admit and self.gate.guards(scope, headers.accept):
            principal = await self.gate.admit(scope, headers.authorization)
            if principal is None:
                await refuse_unauthenticated(scope, receive, send)
                return
            wait = self.limits.wait(principal.key_id)
            if wait:
                await refuse_rate(scope, receive, send, wait, headers.accept)
                return
        if self.body.covers(scope["path"]):
            self.body.check_declared(headers.content_length)
            receive = self.body.counting(receive)
        if self.first is not None:
            route, first = self.first
            if scope["path"] == route.path and not scope.get("root_path"):
                scope["route"] = route  # as the router sets it, for the metrics' label
                found = await first(scope, receive, send, (headers.accept, headers.content_type))
                if found is None:
                    return
                receive = found
        await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SERVER_SEND] = send
        record = RequestRecord(request_id_from(read_headers(scope).request_id))
        accepted = False
        started = time.perf_counter()

        async def send_observed(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                message = with_request_id(message, record.request_id)
                accepted = True
                observe_websocket_accepted()
            await send(message)

        with serving(record):
            try:
                await self.app(scope, receive, send_observed)
            finally:
                observe_websocket_closed(scope, record, accepted, time.perf_counter() - started)
