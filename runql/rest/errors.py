"""REST errors: one body for all of them, `{"status", "code", "message", "field"}`.

Codes are runql's codes in lower case (`bad_user_input`, `not_found`, `conflict`, …); `field`
names the parameter, body field or header at fault, and is left out when there is none.
Anything unexpected is a 500 whose body names only an `error_id`; the log has the rest.
"""

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from runql.errors import RunqlError
from runql.rest.contract import Error
from runql.rest.json import JsonResponse

log = logging.getLogger("runql.errors")

INTERNAL_MESSAGE = "Internal server error"

Endpoint = Callable[[Request], Awaitable[Response]]


class PayloadTooLarge(RunqlError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class UnsupportedMediaType(RunqlError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415


class MethodNotAllowed(RunqlError):
    code = "METHOD_NOT_ALLOWED"
    http_status = 405

    def __init__(self, method: str, allowed: Sequence[str]) -> None:
        super().__init__(f"{method} is not allowed here; use {' or '.join(allowed)}")
        self.allowed = tuple(allowed)


class Unauthenticated(RunqlError):
    code = "UNAUTHENTICATED"
    http_status = 401


def error_body(
    status: int, code: str, message: str, field: str | None = None, error_id: str | None = None
) -> dict[str, Any]:
    return Error(
        status=status, code=code.lower(), message=message, field=field, error_id=error_id
    ).body()


def error_response(error: RunqlError, headers: Mapping[str, str] | None = None) -> Response:
    body = error_body(error.http_status, error.code, error.message, error.field)
    return JsonResponse(body, status_code=error.http_status, headers=headers)


def internal_error_response(request: Request) -> Response:
    error_id = uuid.uuid4().hex
    log.error(
        "unexpected error %s on %s %s", error_id, request.method, request.url.path, exc_info=True
    )
    body = error_body(500, "INTERNAL_SERVER_ERROR", INTERNAL_MESSAGE, error_id=error_id)
    return JsonResponse(body, status_code=500)


def _headers_of(error: RunqlError) -> dict[str, str]:
    if isinstance(error, Unauthenticated):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(error, MethodNotAllowed):
        return {"Allow": ", ".join(error.allowed)}
    return {}


def rest_errors(endpoint: Endpoint) -> Endpoint:
    """The endpoint, answering every error it raises in the REST error shape."""

    async def answered(request: Request) -> Response:
        try:
            return await endpoint(request)
        except RunqlError as error:
            return error_response(error, _headers_of(error))
        except Exception:
            return internal_error_response(request)

    return answered
