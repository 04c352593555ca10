"""ObserveRequests, the outermost middleware: gives each request its id (echoed in X-Request-ID),
counts its SQL statements, records its metrics and writes its access log line; counts open
websockets."""

import logging
import time
from collections.abc import MutableMapping
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runql.operations import metrics
from runql.operations.logs import ACCESS
from runql.operations.requests import (
    REQUEST_ID_HEADER,
    RequestRecord,
    request_id_from,
    serving,
)

access_log = logging.getLogger(ACCESS)
QUIET_PATHS = ("/healthz", "/readyz", "/metrics")  # polled: logged at DEBUG only
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_of(scope: MutableMapping[str, Any]) -> str:
    """A label value: clients may send any method, the series stay few."""
    method = str(scope["method"])
    return method if method in METHODS else "OTHER"


def route_of(scope: MutableMapping[str, Any]) -> str:
    """The route's path template (never the raw path, which would make a series per id)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def _with_request_id(message: Message, request_id: str) -> Message:
    headers = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), request_id.encode())]
    return {**message, "headers": headers}


class ObserveRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _record(self, scope: Scope) -> RequestRecord:
        return RequestRecord(request_id_from(Headers(scope=scope).get(REQUEST_ID_HEADER)))

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = self._record(scope)
        status = 500  # unless the app answers: an exception becomes a 500 further out
        started = time.perf_counter()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = _with_request_id(message, record.request_id)
            await send(message)

        with serving(record):
            try:
                await self.app(scope, receive, send_observed)
            finally:
                seconds = time.perf_counter() - started
                route = route_of(scope)
                metrics.observe_http(method_of(scope), route, status, seconds,
                                     record.statements)
                self._log(scope, record, status, seconds)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = self._record(scope)
        accepted = False
        started = time.perf_counter()

        async def send_observed(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                message = _with_request_id(message, record.request_id)
                accepted = True
                metrics.websocket_opened()
            await send(message)

        with serving(record):
            try:
                await self.app(scope, receive, send_observed)
            finally:
                if accepted:
                    metrics.websocket_closed()
                access_log.info("websocket %s closed", scope["path"], extra={
                    "path": scope["path"], "accepted": accepted,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1)})

    def _log(self, scope: Scope, record: RequestRecord, status: int, seconds: float) -> None:
        level = logging.DEBUG if scope["path"] in QUIET_PATHS and status < 500 else logging.INFO
        client = scope.get("client")
        access_log.log(level, "%s %s %d", scope["method"], scope["path"], status, extra={
            "method": scope["method"], "path": scope["path"], "status": status,
            "duration_ms": round(seconds * 1000, 1), "sql_statements": record.statements,
            "operation": record.operation, "client": client[0] if client else None})
