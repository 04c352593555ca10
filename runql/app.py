"""The ASGI application: GraphQL (and GraphiQL) on /graphql."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from runql.agents.registry import default_registry
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.resolvers.context import Context
from runql.schema.schema import build_schema
from runql.settings import Settings
from runql.storage.database import Database


class GraphQLEndpoint(GraphQL[Context, None]):
    def __init__(self, database: Database, settings: Settings) -> None:
        super().__init__(build_schema(development=settings.is_development), graphql_ide="graphiql")
        self.database = database
        self.settings = settings

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return Context.create(self.database, self.settings, request, response)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


def create_app(settings: Settings | None = None, database: Database | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    owns_database = database is None
    db = database or Database.from_url(
        settings.database_url, pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    graphql = GraphQLEndpoint(db, settings)

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
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.database = db
    app.state.settings = settings
    return app
