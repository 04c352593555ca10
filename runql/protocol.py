"""runql's HTTP/1.1 protocol: uvicorn's (httptools), with the wire (runql/wire.py) before the
ASGI app.

`runql serve` runs uvicorn with it. A POST to /graphql is offered to the wire once its whole
body has arrived: what the wire answers is written in one write (the status line, uvicorn's own
headers, the wire's, the body), with no ASGI task, messages or middleware; what it passes on
starts the ASGI app as uvicorn starts it, the body already read. Keep-alive, pipelined requests
(answered in order), `Connection: close`, flow control and a graceful shutdown go through
uvicorn's own request cycle, which holds each request's state on both paths. A request the wire
cannot take whole goes to the ASGI app as it arrives: one that expects `100 Continue`, one whose
body outgrows uvicorn's buffer, any other method or path.

It reads the fields of uvicorn's request cycle: uvicorn is pinned to a minor version
(pyproject.toml), and tests/test_protocol.py runs real clients against it.
"""

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from starlette.applications import Starlette
from starlette.types import Scope
from uvicorn._types import ASGI3Application
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from runql.wire import Response, Wire

log = logging.getLogger("runql.wire")

OK = STATUS_LINE[200]
_CLOSE = b"connection: close\r\n"


def _inner(app: object, kind: type[Any]) -> Any:
    """The app of `kind` in the chain of wrappers (each keeps the next as `.app`), or None."""
    for _ in range(8):
        if isinstance(app, kind):
            return app
        app = getattr(app, "app", None)
    return None


def wire_of(app: object) -> Wire | None:
    """The wire of runql's app under uvicorn's wrappers (None: every request goes to ASGI)."""
    starlette = _inner(app, Starlette)
    wire = getattr(starlette.state, "wire", None) if starlette is not None else None
    return wire if isinstance(wire, Wire) else None


async def _nothing(*_: Any) -> None:
    return None


class _ProxyHeaders:
    """uvicorn's ProxyHeadersMiddleware, run on a scope by itself (its app does nothing), so
    that the wire logs the client address the ASGI app would see."""

    def __init__(self, middleware: ProxyHeadersMiddleware) -> None:
        self._middleware = ProxyHeadersMiddleware(_nothing, [])
        self._middleware.trusted_hosts = middleware.trusted_hosts

    def apply(self, scope: Scope) -> None:
        call = self._middleware(scope, _nothing, _nothing)  # type: ignore[arg-type]
        try:
            call.send(None)
        except StopIteration:
            return
        call.close()  # (it never suspends: its app returns at once)


class RunqlProtocol(HttpToolsProtocol):
    _defaults: tuple[object, bytes] = (None, b"")  # uvicorn's default headers, as lines

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._wire = wire_of(self.app)
        proxy = _inner(self.app, ProxyHeadersMiddleware)
        self._proxy = _ProxyHeaders(proxy) if proxy is not None else None
        self._held: RequestResponseCycle | None = None  # a POST whose body is arriving

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        """A request ready to start (at once, or after the one before it on the connection):
        to the wire when its body is whole, else to the ASGI app."""
        wire = self._wire
        scope = cycle.scope
        if (
            wire is None
            or app is not self.app
            or scope["method"] != "POST"
            or scope["path"] != wire.path
            or scope["root_path"]
            or cycle.waiting_for_100_continue
        ):
            super()._start_asgi_task(cycle, app)
        elif cycle.more_body:
            self._held = cycle
        else:
            self._offer(cycle)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        held = self._held
        if held is not None and len(held.body) > HIGH_WATER_LIMIT:  # uvicorn stopped reading
            self._held = None
            super()._start_asgi_task(held, self.app)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        held = self._held
        if held is not None and not held.more_body:
            self._held = None
            self._offer(held)

    def connection_lost(self, exc: Exception | None) -> None:
        self._held = None
        super().connection_lost(exc)

    def _offer(self, cycle: RequestResponseCycle) -> None:
        assert self._wire is not None
        scope: dict[str, Any] = cycle.scope  # type: ignore[assignment]
        seen = (scope["client"], scope["scheme"])
        forwarded = None if self._proxy is None else self._proxy.apply
        try:
            found = self._wire.answer(scope, bytes(cycle.body), forwarded)
        except Exception:  # the wire's own fault: the app still answers
            log.exception("the wire failed; the ASGI app answers")
            found = None
        if found is None:
            self._pass_on(cycle, seen)
        elif isinstance(found, tuple) and not self.flow.write_paused:
            self._write(cycle, found)
        else:
            task = self.loop.create_task(self._finish(cycle, found, seen))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

    def _pass_on(self, cycle: RequestResponseCycle, seen: tuple[Any, Any]) -> None:
        scope: dict[str, Any] = cycle.scope  # type: ignore[assignment]
        scope["client"], scope["scheme"] = seen  # as the server saw them: the app's
        # ProxyHeadersMiddleware reads the forwarding headers anew
        super()._start_asgi_task(cycle, self.app)

    async def _finish(
        self,
        cycle: RequestResponseCycle,
        found: Response | Coroutine[Any, Any, Response | None],
        seen: tuple[Any, Any],
    ) -> None:
        try:
            answer = found if isinstance(found, tuple) else await found
        except Exception:
            log.exception("the wire failed; the ASGI app answers")
            answer = None
        if answer is None:
            self._pass_on(cycle, seen)
            return
        if self.flow.write_paused and not cycle.disconnected:
            await self.flow.drain()
        self._write(cycle, answer)

    def _write(self, cycle: RequestResponseCycle, answer: Response) -> None:
        """The whole response in one write, then uvicorn's end of a response."""
        if cycle.disconnected:
            return
        lines, body = answer
        cycle.response_started = True
        parts = [OK, self._default_lines(), lines]
        if not cycle.keep_alive:
            parts.append(_CLOSE)
        parts += (b"\r\n", body)
        self.transport.write(b"".join(parts))
        cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()

    def _default_lines(self) -> bytes:
        """The server's own headers (Date, Server), as uvicorn sends them; remade when uvicorn
        renews them (once a second, for the date)."""
        headers = self.server_state.default_headers
        made, lines = RunqlProtocol._defaults
        if made is not headers:
            lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            RunqlProtocol._defaults = (headers, lines)
        return lines
