"""The ASGI application: the routes (GraphQL, REST, GraphiQL, operations), the edge in front of
them (keys, rate limits, body cap), and the process's runtime (runql/runtime.py) in its lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute

from runql.auth.asgi import KeyGate
from runql.auth.principals import PrincipalCache
from runql.edge import Edge
from runql.endpoint import GraphQLEndpoint
from runql.graphiql.assets import STATIC_PREFIX, STATIC_ROUTE, serve_asset
from runql.operations import collector
from runql.operations.routes import operations_routes
from runql.operations.setup import instrument
from runql.rest import rest_routes
from runql.runtime import Runtime
from runql.security.body import BodyCap
from runql.security.handlers import EXCEPTION_HANDLERS
from runql.security.ratelimit import RateLimits
from runql.settings import Settings
from runql.storage.database import Database
from runql.wire import Wire

PROTECTED = ["/graphql", "/runs"]


def create_app(
    settings: Settings | None = None, database: Database | None = None, *, freeze_gc: bool = False
) -> Starlette:
    """The app. `freeze_gc` (for a server process) settles the garbage collector after start-up
    (runql/operations/collector.py): full collections then stop pausing requests and streams
    for 100 ms and more (BENCHMARKS.md has the feed's p99 and the streams' with and without)."""
    settings = settings or Settings.from_env()
    runtime = Runtime.build(settings, database)
    db, hub, revocations = runtime.database, runtime.hub, runtime.revocations
    instrument(db, settings)
    principals = PrincipalCache(db, revocations)
    graphql = GraphQLEndpoint(db, settings, hub, revocations)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        _app.state.executor = runtime.executor
        _app.state.listener = runtime.listener
        if freeze_gc:
            collector.settle()
        try:
            yield
        finally:
            await runtime.stop()

    async def home(_request: Request) -> Response:
        return RedirectResponse("/graphql")

    graphql_route = Route("/graphql", graphql, methods=["GET", "POST"])
    routes: list[Any] = [
        graphql_route,  # first: the router tries in order
        Route("/", home),
        Route(STATIC_ROUTE, serve_asset, methods=["GET"]),
        WebSocketRoute("/graphql", graphql),
        *operations_routes(),
        *rest_routes(db, settings),
    ]
    gate = KeyGate(principals, PROTECTED, public=[STATIC_PREFIX])
    limits = RateLimits(settings.rate_limit_per_second, settings.rate_limit_burst)
    body = BodyCap(settings.max_body_bytes, paths=["/graphql"])
    edge = Middleware(  # the key, its rate limit and the body cap: runql/edge.py
        Edge,
        gate=gate,
        limits=limits,
        body=body,
        first=(graphql_route, graphql.lane_first) if graphql.lane is not None else None,
    )
    app = Starlette(
        routes=routes, lifespan=lifespan, middleware=[edge], exception_handlers=EXCEPTION_HANDLERS
    )
    app.state.database = db
    app.state.settings = settings
    app.state.hub = hub
    app.state.revocations = revocations
    app.state.principals = principals
    app.state.open_sockets = graphql.open_sockets
    app.state.streams = graphql.streams
    app.state.wire = (  # runql/protocol.py offers it the planned POSTs, below ASGI
        None
        if graphql.lane is None
        else Wire(gate, limits, body, graphql, graphql.lane, graphql_route)
    )
    return app
