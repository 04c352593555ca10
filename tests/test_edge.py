"""The edge is the app's one layer of fixed per-request work: between Starlette's
ServerErrorMiddleware and its router, and one wrapper of `send` on a response's way out."""

from collections.abc import Callable
from types import FunctionType
from typing import Any

from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from runql.app import create_app
from runql.edge import Edge
from runql.settings import Settings
from runql.storage.database import Database
from tests.operations.helpers import client


def _layers(app: Any) -> list[type]:
    found = [type(app)]
    while not isinstance(app, Router):
        app = app.app
        found.append(type(app))
    return found


def _senders(send: Callable[..., Any]) -> list[str]:
    """The functions a response goes through, from the route's `send` outwards: each wrapper
    holds the next one as its closure's `send`."""
    chain = []
    while isinstance(send, FunctionType) and "send" in send.__code__.co_freevars:
        chain.append(f"{send.__module__}.{send.__qualname__}")
        cell = send.__closure__[send.__code__.co_freevars.index("send")]  # type: ignore[index]
        send = cell.cell_contents
    return chain


class Probe:
    """An ASGI route that keeps the `send` it is given and answers 204."""

    def __init__(self) -> None:
        self.sends: list[Callable[..., Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.sends.append(send)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_the_fixed_layers_are_one_edge_between_starlette_s_own(
    database: Database, settings: Settings
) -> None:
    stack = create_app(settings, database).build_middleware_stack()

    assert _layers(stack) == [ServerErrorMiddleware, Edge, ExceptionMiddleware, Router]


async def test_a_response_goes_through_one_wrapper_of_the_edge(
    demo_database: Database, settings: Settings, api_key: str
) -> None:
    app = create_app(settings, demo_database)
    probe = Probe()
    app.router.routes.insert(0, Route("/graphql/probe", probe))  # key, rate and body cap apply

    async with client(app, api_key) as http:
        response = await http.post(
            "/graphql/probe", content=b"{}", headers={"X-Request-ID": "probe-1"}
        )

    assert response.status_code == 204
    assert response.headers["x-request-id"] == "probe-1"
    [send] = probe.sends
    runql_senders = [name for name in _senders(send) if name.startswith("runql.")]
    assert runql_senders == ["runql.edge.Edge._http.<locals>.send_observed"]


async def test_without_a_key_the_route_is_not_reached(
    database: Database, settings: Settings
) -> None:
    app = create_app(settings, database)
    probe = Probe()
    app.router.routes.insert(0, Route("/graphql/probe", probe))

    async with client(app) as http:
        response = await http.post("/graphql/probe", content=b"{}")

    assert response.status_code == 401
    assert probe.sends == []
