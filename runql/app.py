"""The ASGI application: the GraphQL endpoint, the executor's workers, and authentication."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute

from runql.agents.registry import default_registry
from runql.auth.asgi import RequireApiKey
from runql.bus.feeders import feed_from_commits
from runql.bus.hub import Hub
from runql.endpoint import GraphQLEndpoint
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.rest import rest_routes
from runql.settings import Settings
from runql.storage.database import Database

PROTECTED = ["/graphql", "/runs"]


def create_app(settings: Settings | None = None, database: Database | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    owns_database = database is None
    db = database or Database.from_url(
        settings.database_url, pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    hub = Hub(settings.subscriber_queue_size)
    feed_from_commits(hub, db)
    graphql = GraphQLEndpoint(db, settings, hub)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        executor = None
        if settings.workers > 0:
            executor = Executor(db, default_registry(), ExecutorConfig.from_settings(settings))
            await executor.start()
        try:
            yield
        finally:
            if executor is not None:
                await executor.stop()
            if owns_database:
                await db.dispose()

    async def home(_request: Request) -> Response:
        return RedirectResponse("/graphql")

    routes: list[Any] = [
        Route("/", home),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        *rest_routes(db, settings),
    ]
    middleware = [Middleware(RequireApiKey, database=db, protected=PROTECTED)]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.database = db
    app.state.settings = settings
    app.state.hub = hub
    return app
