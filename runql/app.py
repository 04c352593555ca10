"""The ASGI application: GraphQL (and GraphiQL) on /graphql."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError

from runql.agents.registry import default_registry
from runql.auth.asgi import UNAUTHENTICATED, RequireApiKey, principal_of
from runql.auth.devkey import graphiql_page
from runql.auth.keys import authenticate, bearer_secret
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
        principal = principal_of(request.scope)
        org_id = principal.org_id if principal else ""
        return Context.create(self.database, self.settings, org_id, request, response)

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """Websockets authenticate at `connection_init` (an `Authorization` entry in its
        payload) or with the upgrade request's header; a bad key closes with 4403."""
        params = context.connection_params or {}
        given = params.get("Authorization") or params.get("authorization")
        assert context.request is not None
        secret = bearer_secret(given if isinstance(given, str) else
                               context.request.headers.get("authorization"))
        principal = await authenticate(self.database, secret)
        if principal is None:
            raise ConnectionRejectionError({"reason": UNAUTHENTICATED})
        context.authenticate(principal.org_id)
        return None

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql_page(self.graphql_ide_html, self.settings))

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
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(RequireApiKey, database=db, protected=["/graphql"])])
    app.state.database = db
    app.state.settings = settings
    return app
