"""The GraphQL endpoint on /graphql: queries and mutations over HTTP, subscriptions over
websockets (graphql-transport-ws and the legacy graphql-ws) and over HTTP (Apollo's multipart
protocol and graphql-sse: runql/fanout/http_streams.py), and GraphiQL for browsers.
A POST of JSON is offered to the fast lane first (runql/fastpath/lane.py)."""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from runql.auth.asgi import UNAUTHENTICATED, principal_of
from runql.auth.keys import authenticate, bearer_secret
from runql.auth.revocation import Revocations
from runql.bus.hub import Hub
from runql.bus.shared import SharedReads
from runql.encoding import dumps_text
from runql.fanout.http_streams import PROTOCOLS, GraphQLOverHTTPStreams
from runql.fanout.sinks import LegacyWSHandler, TransportWSHandler
from runql.fanout.sockets import OpenSockets
from runql.fanout.streams import Lead, SharedStreams
from runql.fastpath.lane import (
    FastLane,
    LaneTimeout,
    body_of,
    buffered,
    header,
    replaying,
    send_body,
)
from runql.fastpath.mutation_lane import MutationLane
from runql.fastpath.persisted import PersistedQueries
from runql.graphiql.page import graphiql_page
from runql.resolvers.context import Context
from runql.security.media import is_json_request, negotiate
from runql.security.over_http import request_data
from runql.security.timeout import deadline
from runql.served_schema import schema_for
from runql.settings import Settings
from runql.storage.database import Database

LANE_TRIED = "runql.lane_tried"  # in a request's scope once the lane declined it: its deadline


def org_of(scope: Scope) -> str:
    """The organization of the request's key ("" without one: nothing is visible)."""
    principal = principal_of(scope)
    return principal.org_id if principal else ""


class GraphQLEndpoint(GraphQLOverHTTPStreams[Context, None]):  # spec codes, media types
    graphql_transport_ws_handler_class = TransportWSHandler  # type: ignore[assignment]
    graphql_ws_handler_class = LegacyWSHandler  # type: ignore[assignment]

    def __init__(
        self, database: Database, settings: Settings, hub: Hub, revocations: Revocations
    ) -> None:
        super().__init__(
            schema_for(settings),
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            keep_alive=True,
            keep_alive_interval=settings.ws_keep_alive_seconds,
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
            allowed_origins=settings.allowed_origins,
            subscription_protocols=PROTOCOLS,
        )
        self.database = database
        self.settings = settings
        self.max_body_depth = settings.max_body_depth
        self.hub = hub
        self.shared = SharedReads(database)
        self.streams = SharedStreams(self._run_shared, settings.ws_max_backlog_bytes)
        self.persisted = PersistedQueries()
        self.open_sockets = OpenSockets(database, revocations)  # a revoked key's close with 4403
        self.lane = FastLane.of(self.schema, database, settings)
        self.mutations = (  # createRun past the view, where the lane runs
            None if self.lane is None else MutationLane.of(self.schema, database, settings)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.wants_stream(header(scope, b"accept")):
            await self.serve_stream(scope, receive, send)  # the lane declined it (lane_first)
            return
        if LANE_TRIED not in scope:
            found = await self.lane_first(scope, receive, send)
            if found is None:
                return
            receive = found
        at = scope.get(LANE_TRIED)
        if at is None:
            await super().__call__(scope, receive, send)
        else:  # the lane ran out of time: the view answers by the same deadline
            with deadline(at):
                await super().__call__(scope, receive, send)

    async def lane_first(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        read: tuple[str | None, str | None] | None = None,
    ) -> Receive | None:
        """A POST of JSON the lane answers is answered here (None); for anything else the
        `receive` the view must read, the request's buffered messages first. The edge calls it
        before the router (runql/edge.py), so a request the lane answers costs no routing,
        with the Accept and Content-Type it read (`read`; else they are read here)."""
        lane = self.lane
        if lane is None or scope["type"] != "http" or scope["method"] != "POST":
            return receive
        if LANE_TRIED in scope:  # the wire ran the lane (runql/wire.py)
            return receive
        scope[LANE_TRIED] = None
        accept, content_type = (
            (header(scope, b"accept"), header(scope, b"content-type")) if read is None else read
        )
        if not is_json_request(content_type) or self.wants_stream(accept):
            return receive  # a subscription over HTTP: __call__ streams it
        messages = await buffered(receive)
        try:
            body = body_of(messages)
            found = None if body is None else self.lane_request(body)
            answer = None if found is None else await lane.answer(found, org_of(scope))
            if answer is None and found is not None and self.mutations is not None:
                answer = await self.mutations.answer(
                    found.query, found.operation_name, found.variables, org_of(scope)
                )
        except LaneTimeout as timeout:
            scope[LANE_TRIED] = timeout.deadline
            return replaying(messages, receive)
        if answer is None:
            return replaying(messages, receive)
        await send_body(send, answer, negotiate(accept))
        return None

    def lane_request(self, body: bytes) -> GraphQLRequestData | None:
        """The request's operation as the view reads it, its persisted document resolved;
        None for anything the view refuses or answers otherwise."""
        try:
            return self.persisted.with_document(request_data(self.parse_json(body), "http"))
        except HTTPException:
            return None

    async def _run_shared(
        self,
        org_id: str,
        lead: Lead,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, object] | None,
    ) -> Any:
        """A shared stream's execution: the operation as its members run it, in their
        organization, from where the stream starts."""
        context = Context.create(
            self.database, self.settings, org_id, hub=self.hub, shared=self.shared, lead=lead
        )
        return await self.schema.subscribe(
            query,
            variable_values=dict(variables or {}),
            context_value=context,
            operation_name=operation_name,
        )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        streams = self.streams if self.settings.ws_shared_streams else None
        return Context.create(
            self.database,
            self.settings,
            org_of(request.scope),
            request,
            response,
            self.hub,
            self.shared,
            streams,
        )

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Automatic Persisted Queries: a known SHA-256 stands for its document."""
        resolved = self.persisted.resolve(request_data, sub_response)
        if isinstance(resolved, ExecutionResult):
            return resolved  # PersistedQueryNotFound: the client sends the document next
        return await super().execute_single(
            request=request,
            request_adapter=request_adapter,
            sub_response=sub_response,
            context=context,
            root_value=root_value,
            request_data=resolved,
        )

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """Websockets authenticate at `connection_init` (an `Authorization` entry in its
        payload) or with the upgrade request's header; a bad key closes with 4403, and so does
        the key's revocation later (the handlers hold the socket under the key's id)."""
        params = context.connection_params or {}
        given = params.get("Authorization") or params.get("authorization")
        assert context.request is not None
        secret = bearer_secret(
            given if isinstance(given, str) else context.request.headers.get("authorization")
        )
        principal = await authenticate(self.database, secret)
        if principal is None:
            raise ConnectionRejectionError({"reason": UNAUTHENTICATED})
        context.authenticate(principal.org_id, principal.key_id)
        return None

    async def render_graphql_ide(self, request: Request) -> Response:
        """runql's own GraphiQL page (runql/graphiql/), which loads nothing from a CDN."""
        return graphiql_page(request, self.settings)

    def encode_json(self, data: object) -> str:
        """Text, not bytes: websocket messages must go out as text frames."""
        return dumps_text(data)
