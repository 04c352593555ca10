"""What the edge (runql/edge.py) records of each request: the request id it echoes in
X-Request-ID, the HTTP metrics and the access log line; open websockets."""

import logging
from collections.abc import MutableMapping
from typing import Any

from starlette.types import Message

from runql.operations import metrics
from runql.operations.logs import access_line
from runql.operations.requests import REQUEST_ID_HEADER, RequestRecord

QUIET_PATHS = ("/healthz", "/readyz", "/metrics")  # polled: logged at DEBUG only
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REQUEST_ID_NAME = REQUEST_ID_HEADER.encode()


def with_request_id(message: Message, request_id: str) -> Message:
    """A response's start (or a websocket's accept) with the X-Request-ID header."""
    headers = [*message.get("headers", []), (_REQUEST_ID_NAME, request_id.encode())]
    return {**message, "headers": headers}


def request_id_line(request_id: str) -> bytes:
    """The X-Request-ID header `with_request_id` adds, as a line of the response's head."""
    return _REQUEST_ID_NAME + b": " + request_id.encode() + b"\r\n"


def observe_http(
    scope: MutableMapping[str, Any], record: RequestRecord, status: int, seconds: float
) -> None:
    """An answered HTTP request: its metrics and its access line."""
    path, method = scope["path"], scope["method"]
    # Label values: clients may send any method, and the route is its path template (never
    # the raw path, which would make a series per id): the series stay few.
    route = getattr(scope.get("route"), "path", None)
    metrics.observe_http(
        method if method in METHODS else "OTHER",
        route if isinstance(route, str) else UNMATCHED,
        status,
        seconds,
        record.statements,
    )
    level = logging.DEBUG if path in QUIET_PATHS and status < 500 else logging.INFO
    client = scope.get("client")
    access_line(
        level,
        f"{method} {path} {status}",
        record.request_id,
        {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "sql_statements": record.statements,
            "operation": record.operation,
            "client": client[0] if client else None,
        },
    )


def observe_websocket_accepted() -> None:
    metrics.websocket_opened()


def observe_websocket_closed(
    scope: MutableMapping[str, Any], record: RequestRecord, accepted: bool, seconds: float
) -> None:
    """A websocket's end: the open-socket gauge and its access line."""
    if accepted:
        metrics.websocket_closed()
    path = scope["path"]
    access_line(
        logging.INFO,
        f"websocket {path} closed",
        record.request_id,
        {"path": path, "accepted": accepted, "duration_ms": round(seconds * 1000, 1)},
    )
