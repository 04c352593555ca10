"""Error responses of the HTTP layer, each with a code: GraphQL's shape on /graphql, the REST
shape (`{"status", "code", "message"}`) elsewhere."""

from collections.abc import Mapping

import orjson
from starlette.responses import Response

from runql.security.media import JSON, content_type_header

GRAPHQL_PATH = "/graphql"


def graphql_error_response(status: int, code: str, message: str, *, media_type: str = JSON,
                           headers: Mapping[str, str] | None = None) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    response = Response(orjson.dumps(body), status_code=status, headers=headers)
    response.headers["content-type"] = content_type_header(media_type)
    return response


def rest_error_response(status: int, code: str, message: str, *,
                        headers: Mapping[str, str] | None = None) -> Response:
    body = {"status": status, "code": code.lower(), "message": message}
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=JSON)


def error_response(path: str, status: int, code: str, message: str, *, media_type: str = JSON,
                   headers: Mapping[str, str] | None = None) -> Response:
    if path.startswith(GRAPHQL_PATH):
        return graphql_error_response(status, code, message, media_type=media_type,
                                      headers=headers)
    return rest_error_response(status, code, message, headers=headers)
