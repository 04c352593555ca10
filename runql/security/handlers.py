"""The app's exception handlers: what no route answers itself is still JSON with a code.

Starlette's own refusals (404 for an unknown path, 405 for a method a route does not take)
and any exception nobody caught (a 500, its message masked, the exception logged with the
`errorId` the body names) take the route's shape: GraphQL's on /graphql, the REST shape
elsewhere (see runql.security.responses).
"""

import logging
import uuid

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from runql.security.media import negotiate
from runql.security.responses import code_of, error_response, masked_error_response

log = logging.getLogger("runql.errors")


def _message(request: Request, error: HTTPException) -> str:
    if error.status_code == 404:
        return f"there is no endpoint {request.url.path}"
    if error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        return f"{request.method} is not allowed on {request.url.path}; use {allowed}"
    return str(error.detail)


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return error_response(
        request.url.path,
        error.status_code,
        code_of(error.status_code),
        _message(request, error),
        headers=error.headers,
        media_type=negotiate(request.headers.get("accept")),
    )


async def internal_error(request: Request, _error: Exception) -> Response:
    """Called by Starlette's ServerErrorMiddleware, which then raises the exception again
    (the server logs it too)."""
    error_id = uuid.uuid4().hex
    log.error(
        "unexpected error %s on %s %s", error_id, request.method, request.url.path, exc_info=True
    )
    return masked_error_response(
        request.url.path, error_id, media_type=negotiate(request.headers.get("accept"))
    )


EXCEPTION_HANDLERS = {HTTPException: http_error, Exception: internal_error}
