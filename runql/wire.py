"""The wire: a planned GraphQL POST from its request's bytes to its response's bytes, below ASGI.

runql's HTTP protocol (runql/protocol.py) offers the wire each whole POST to /graphql before it
starts the ASGI app. For a request the fast lane plans (runql/fastpath/lane.py) and whose key
the principal cache holds, the wire does what the edge (runql/edge.py) and the endpoint's
`lane_first` would do, in their order and with their code: the request record and id, the key,
the rate limit, the body cap, the lane's read, then the metrics and the access line; and it
gives the protocol the response's header lines and body, which the protocol writes at once.

Everything else goes on to the ASGI app as it came (`None`): a key to read from the database,
a refusal (401, 413, 429: the edge sends them), a stream, anything the lane does not plan. A
request the wire admitted (key checked, token taken) and then could not answer (the lane
declined, or ran out of time) goes on with a `Tried` in its scope, so that the edge keeps its
record and does not take a second token, and with the lane's LANE_TRIED, so that the view
answers it (by the lane's deadline after a timeout).
"""

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.routing import Route
from starlette.types import Scope

from runql.auth.asgi import KeyGate
from runql.edge import TRIED, Tried, read_headers
from runql.endpoint import LANE_TRIED, GraphQLEndpoint
from runql.fastpath.lane import FastLane, LaneTimeout, Planned, content_type_line
from runql.operations.observe import observe_http, request_id_line
from runql.operations.requests import CURRENT_REQUEST, RequestRecord, request_id_from
from runql.security.body import BodyCap
from runql.security.media import is_json_request, negotiate
from runql.security.ratelimit import RateLimits

log = logging.getLogger("runql.wire")

# An answer's header lines (each with its CRLF; the protocol adds the status line, the server's
# own headers and the blank line) and its body.
Response = tuple[bytes, bytes]
Answer = Response | None | Coroutine[Any, Any, Response | None]


class Wire:
    def __init__(
        self,
        gate: KeyGate,
        limits: RateLimits,
        body: BodyCap,
        endpoint: GraphQLEndpoint,
        lane: FastLane,
        route: Route,
    ) -> None:
        self.gate = gate
        self.limits = limits
        self.max_body = body.max_bytes if body.covers(route.path) else None
        self.endpoint = endpoint
        self.lane = lane
        self.route = route
        self.path = route.path
        self.answered = 0  # requests the wire answered

    def answer(
        self, scope: Scope, body: bytes, forwarded: Callable[[Scope], None] | None = None
    ) -> Answer:
        """The response to a whole POST (its scope as the server made it, its body), now or to
        await; None: the ASGI app answers it (with a Tried in its scope if it was admitted).
        `forwarded` sets the scope's client as the server's proxy-headers middleware would, for
        a request with X-Forwarded-* headers."""
        started = time.perf_counter()
        headers = read_headers(scope)
        if forwarded is not None and headers.forwarded is not None:
            forwarded(scope)
        if (
            (self.max_body is not None and len(body) > self.max_body)
            or not is_json_request(headers.content_type)
            or self.endpoint.wants_stream(headers.accept)
            or not self.gate.guards(scope, headers.accept)
        ):
            return None
        principal = self.gate.admit_cached(scope, headers.authorization)
        if principal is None:
            return None
        request = self.endpoint.lane_request(body)
        planned = None if request is None else self.lane.plan(request)
        if planned is None or self.limits.wait(principal.key_id):
            return None  # (a refused token is not taken: the edge refuses it)
        record = RequestRecord(request_id_from(headers.request_id))
        scope["route"] = self.route  # as the router sets it, for the metrics' label
        current = CURRENT_REQUEST.set(record)
        try:
            return self._run(scope, planned, principal.org_id, record, started, headers.accept)
        finally:
            CURRENT_REQUEST.reset(current)

    def _run(
        self,
        scope: Scope,
        planned: Planned,
        org_id: str,
        record: RequestRecord,
        started: float,
        accept: str | None,
    ) -> Answer:
        try:
            found = self.lane.run(planned, org_id)
        except LaneTimeout as timeout:
            self._pass_on(scope, record, started, timeout.deadline)
            return None
        if found is None:
            self._pass_on(scope, record, started, None)
            return None
        if isinstance(found, bytes):
            return self._answered(scope, found, record, started, accept)
        return self._later(scope, found, record, started, accept)

    async def _later(
        self,
        scope: Scope,
        pending: Coroutine[Any, Any, bytes | None],
        record: RequestRecord,
        started: float,
        accept: str | None,
    ) -> Response | None:
        """The rest of an answer the lane reads later, in the protocol's task: the request's
        record is current here too (the task began in the server's context, without it), so
        that its statements, operation and log lines are the request's."""
        current = CURRENT_REQUEST.set(record)
        try:
            found = await pending
        except LaneTimeout as timeout:
            self._pass_on(scope, record, started, timeout.deadline)
            return None
        finally:
            CURRENT_REQUEST.reset(current)
        if found is None:
            self._pass_on(scope, record, started, None)
            return None
        return self._answered(scope, found, record, started, accept)

    def _pass_on(
        self, scope: Scope, record: RequestRecord, started: float, deadline: float | None
    ) -> None:
        scope[TRIED] = Tried(record, started)
        scope[LANE_TRIED] = deadline
        return

    def _answered(
        self,
        scope: Scope,
        body: bytes,
        record: RequestRecord,
        started: float,
        accept: str | None,
    ) -> Response:
        """200 with the body, the headers the lane's answer has on the ASGI path."""
        lines = b"".join(
            (
                b"content-length: %d\r\n" % len(body),
                content_type_line(negotiate(accept)),
                request_id_line(record.request_id),
            )
        )
        self.answered += 1
        observe_http(scope, record, 200, time.perf_counter() - started)
        return lines, body
