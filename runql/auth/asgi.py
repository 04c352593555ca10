"""Every HTTP entry point but the GraphiQL page and the health checks needs an API key (looked
up in the principal cache, runql/auth/principals.py)."""

from collections.abc import Iterable

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from runql.auth.keys import Principal, bearer_secret
from runql.auth.principals import PrincipalCache

PRINCIPAL = "runql.principal"
UNAUTHENTICATED = "a valid API key is required: send `Authorization: Bearer runql_sk_…`"


def principal_of(scope: Scope) -> Principal | None:
    found: Principal | None = scope.get(PRINCIPAL)
    return found


def _is_graphiql_page(scope: Scope, headers: Headers) -> bool:
    """The GraphiQL page itself (static; the requests it makes carry a key)."""
    return (scope["path"] == "/graphql" and scope["method"] == "GET"
            and "text/html" in headers.get("accept", "") and not scope.get("query_string"))


def _refusal(path: str) -> bytes:
    if path.startswith("/graphql"):
        return orjson.dumps({"errors": [{"message": UNAUTHENTICATED,
                                         "extensions": {"code": "UNAUTHENTICATED"}}]})
    return orjson.dumps({"status": 401, "code": "unauthenticated", "message": UNAUTHENTICATED})


class RequireApiKey:
    def __init__(self, app: ASGIApp, principals: PrincipalCache, protected: Iterable[str],
                 public: Iterable[str] = ()) -> None:
        self.app = app
        self.principals = principals
        self.protected = tuple(protected)
        self.public = tuple(public)  # prefixes inside protected ones, such as GraphiQL's files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or not scope["path"].startswith(self.protected)
                or scope["path"].startswith(self.public)):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if _is_graphiql_page(scope, headers):
            await self.app(scope, receive, send)
            return
        principal = await self.principals.authenticate(
            bearer_secret(headers.get("authorization")))
        if principal is None:
            body = _refusal(scope["path"])
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)
