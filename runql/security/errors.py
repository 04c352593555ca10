"""The codes of the errors a limit answers with."""

from graphql import GraphQLError, Node

QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
TIMEOUT = "TIMEOUT"
RATE_LIMITED = "RATE_LIMITED"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"  # operations on one websocket


def too_complex(
    message: str,
    limit: str,
    maximum: int,
    *,
    actual: int | None = None,
    nodes: list[Node] | None = None,
) -> GraphQLError:
    """An operation over one of the query limits: `limit` names which, `maximum` its value."""
    extensions: dict[str, object] = {"code": QUERY_TOO_COMPLEX, "limit": limit, "maximum": maximum}
    if actual is not None:
        extensions["actual"] = actual
    return GraphQLError(message, nodes, extensions=extensions)
