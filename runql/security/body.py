"""The request body cap: 413 as soon as a body is known to be over it."""

from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runql.security.errors import PAYLOAD_TOO_LARGE
from runql.security.media import negotiate
from runql.security.responses import error_response


class BodyTooLarge(Exception):
    pass


def _declared_length(headers: Headers) -> int | None:
    declared = headers.get("content-length", "")
    return int(declared) if declared.isdigit() else None


class LimitBody:
    """ASGI middleware for the paths given: checks Content-Length first, then counts what
    arrives (a chunked body declares no length)."""

    def __init__(self, app: ASGIApp, max_bytes: int, paths: Iterable[str]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = tuple(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.paths):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = _declared_length(headers)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, headers)
            return
        started = False
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, headers)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        response = error_response(
            scope["path"], 413, PAYLOAD_TOO_LARGE,
            f"the request body is over {self.max_bytes} bytes, the most a request may send",
            media_type=negotiate(headers.get("accept")))
        await response(scope, receive, send)
