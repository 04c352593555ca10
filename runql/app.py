"""The ASGI application: the GraphQL endpoint, the executor's workers, and authentication."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute

from runql.agents.egress import EgressPolicy
from runql.agents.registry import default_registry
from runql.auth.asgi import KeyGate
from runql.auth.principals import PrincipalCache
from runql.auth.revocation import Revocations
from runql.bus.feeders import feed_from_commits, other_processes
from runql.bus.hub import Hub
from runql.bus.revocations import RevocationPoll
from runql.edge import Edge
from runql.endpoint import GraphQLEndpoint
from runql.graphiql.assets import STATIC_PREFIX, STATIC_ROUTE, serve_asset
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.operations.routes import operations_routes
from runql.operations.setup import instrument
from runql.rest import rest_routes
from runql.security.body import BodyCap
from runql.security.handlers import EXCEPTION_HANDLERS
from runql.security.ratelimit import RateLimits
from runql.settings import Settings
from runql.storage.database import Database

PROTECTED = ["/graphql", "/runs"]


def create_app(
    settings: Settings | None = None, database: Database | None = None, *, freeze_gc: bool = False
) -> Starlette:
    """The app. `freeze_gc` (for a server process) moves everything alive after start-up out
    of the garbage collector's reach: full collections then stop pausing requests for 100 ms
    and more (BENCHMARKS.md has the feed's p99 with and without)."""
    settings = settings or Settings.from_env()
    owns_database = database is None
    db = database or Database.from_url(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    instrument(db, settings)
    hub = Hub(settings.subscriber_queue_size)
    feed_from_commits(hub, db)
    revocations = Revocations()
    principals = PrincipalCache(db, revocations)
    graphql = GraphQLEndpoint(db, settings, hub, revocations)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        listener = other_processes(hub, db, revocations)
        poll = RevocationPoll(db, revocations) if db.is_sqlite else None
        for feeder in (listener, poll):
            if feeder is not None:
                await feeder.start()
        executor = None
        if settings.workers > 0:
            executor = Executor(
                db,
                default_registry(EgressPolicy.from_settings(settings)),
                ExecutorConfig.from_settings(settings),
                hub=hub,
            )
            await executor.start()
        _app.state.executor = executor
        _app.state.listener = listener
        if freeze_gc:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if executor is not None:
                await executor.stop()
            for feeder in (listener, poll):
                if feeder is not None:
                    await feeder.stop()
            if owns_database:
                await db.dispose()

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
    edge = Middleware(  # the key, its rate limit and the body cap: runql/edge.py
        Edge,
        gate=KeyGate(principals, PROTECTED, public=[STATIC_PREFIX]),
        limits=RateLimits(settings.rate_limit_per_second, settings.rate_limit_burst),
        body=BodyCap(settings.max_body_bytes, paths=["/graphql"]),
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
    return app
