"""Every HTTP entry point but the GraphiQL page and the health checks needs an API key (looked
up in the principal cache, runql/auth/principals.py). The edge (runql/edge.py) asks the gate
whether a request needs one, admits it with its principal or sends the 401 refusal."""

from collections.abc import Iterable

from starlette.types import Receive, Scope, Send

from runql.auth.keys import Principal, bearer_secret
from runql.auth.principals import PrincipalCache
from runql.security.responses import error_response

PRINCIPAL = "runql.principal"
UNAUTHENTICATED = "a valid API key is required: send `Authorization: Bearer runql_sk_…`"


def principal_of(scope: Scope) -> Principal | None:
    found: Principal | None = scope.get(PRINCIPAL)
    return found


def _is_graphiql_page(scope: Scope, accept: str | None) -> bool:
    """The GraphiQL page itself (static; the requests it makes carry a key)."""
    return (
        scope["path"] == "/graphql"
        and scope["method"] == "GET"
        and "text/html" in (accept or "")
        and not scope.get("query_string")
    )


async def refuse_unauthenticated(scope: Scope, receive: Receive, send: Send) -> None:
    """401, in the route's error shape."""
    response = error_response(
        scope["path"],
        401,
        "UNAUTHENTICATED",
        UNAUTHENTICATED,
        headers={"www-authenticate": "Bearer"},
    )
    await response(scope, receive, send)


class KeyGate:
    """The paths that need a key (`protected` prefixes, less the `public` ones inside them,
    such as GraphiQL's files) and the principal of the key an HTTP request sends."""

    def __init__(
        self, principals: PrincipalCache, protected: Iterable[str], public: Iterable[str] = ()
    ) -> None:
        self.principals = principals
        self.protected = tuple(protected)
        self.public = tuple(public)

    def guards(self, scope: Scope, accept: str | None) -> bool:
        path = scope["path"]
        return (
            path.startswith(self.protected)
            and not path.startswith(self.public)
            and not (scope["method"] == "GET" and _is_graphiql_page(scope, accept))
        )

    def admit_cached(self, scope: Scope, authorization: str | None) -> Principal | None:
        """`admit` for a key the principal cache holds, with no read; None: `admit` decides."""
        principal = self.principals.cached(bearer_secret(authorization))
        if principal is not None:
            scope[PRINCIPAL] = principal
        return principal

    async def admit(self, scope: Scope, authorization: str | None) -> Principal | None:
        """The key's principal, kept in the scope for the routes; None for no valid key."""
        principal = await self.principals.authenticate(bearer_secret(authorization))
        if principal is not None:
            scope[PRINCIPAL] = principal
        return principal
