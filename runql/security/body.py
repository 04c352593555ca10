"""The request body cap: 413 as soon as a body is known to be over it, from its Content-Length
first, else by counting what arrives (a chunked body declares no length). The edge
(runql/edge.py) applies it to the paths given."""

from collections.abc import Iterable

from starlette.types import Message, Receive, Scope, Send

from runql.security.errors import PAYLOAD_TOO_LARGE
from runql.security.media import negotiate
from runql.security.responses import error_response


class BodyTooLarge(Exception):
    pass


class BodyCap:
    def __init__(self, max_bytes: int, paths: Iterable[str]) -> None:
        self.max_bytes = max_bytes
        self.paths = tuple(paths)

    def covers(self, path: str) -> bool:
        return path.startswith(self.paths)

    def check_declared(self, content_length: str | None) -> None:
        """Raises BodyTooLarge for a declared length over the cap."""
        declared = content_length or ""
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_bytes:
            raise BodyTooLarge

    def counting(self, receive: Receive) -> Receive:
        """`receive` that raises BodyTooLarge once what arrived is over the cap."""
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge
            return message

        return counted

    async def refuse(self, scope: Scope, receive: Receive, send: Send, accept: str | None) -> None:
        response = error_response(
            scope["path"],
            413,
            PAYLOAD_TOO_LARGE,
            f"the request body is over {self.max_bytes} bytes, the most a request may send",
            media_type=negotiate(accept),
        )
        await response(scope, receive, send)
