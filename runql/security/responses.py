"""Error responses of the HTTP layer, each with a code: GraphQL's shape on /graphql, the REST
shape (`{"status", "code", "message"}`) elsewhere."""

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

from runql.security.media import INTERNAL, JSON, content_type_header

GRAPHQL_PATH = "/graphql"
INTERNAL_MESSAGE = "Internal server error"
CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    500: INTERNAL,
}


def code_of(status: int) -> str:
    """The code of an error the HTTP layer answers with its status alone."""
    return CODES.get(status, "BAD_REQUEST" if status < 500 else INTERNAL)


def graphql_error_response(
    status: int,
    code: str,
    message: str,
    *,
    media_type: str = JSON,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code, **(details or {})}}]}
    response = Response(orjson.dumps(body), status_code=status, headers=headers)
    response.headers["content-type"] = content_type_header(media_type)
    return response


def rest_error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> Response:
    body = {"status": status, "code": code.lower(), "message": message, **(details or {})}
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=JSON)


def error_response(
    path: str,
    status: int,
    code: str,
    message: str,
    *,
    media_type: str = JSON,
    headers: Mapping[str, str] | None = None,
) -> Response:
    if path.startswith(GRAPHQL_PATH):
        return graphql_error_response(status, code, message, media_type=media_type, headers=headers)
    return rest_error_response(status, code, message, headers=headers)


def masked_error_response(path: str, error_id: str, *, media_type: str = JSON) -> Response:
    """A 500 that says nothing but which report of the log has the rest: `errorId` in a
    GraphQL error's extensions, `error_id` in a REST error."""
    if path.startswith(GRAPHQL_PATH):
        return graphql_error_response(
            500, INTERNAL, INTERNAL_MESSAGE, media_type=media_type, details={"errorId": error_id}
        )
    return rest_error_response(500, INTERNAL, INTERNAL_MESSAGE, details={"error_id": error_id})
