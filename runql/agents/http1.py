"""An httpx transport for agents whose answers stream (the `openai` kind): HTTP/1.1 over an
asyncio protocol, answers parsed (and de-chunked) by httptools, the parser uvicorn serves with.

Why not httpx's own: it reads through httpcore, h11 and anyio, one socket read at a time with a
cancel scope around each, and at 100 streams of 50 tokens a second that was 100-180 µs a chunk,
most of the agents' process's core before it wrote or delivered anything. Here the bytes that
arrive cost a protocol callback and the parser's C; a read hands over everything that arrived
since the last one, so a busy event loop reads many chunks at once instead of falling behind.

What it keeps: the request is httpx's (the SDK builds it: headers, auth, body; its retries and
status errors stay the SDK's); httpx's timeouts, per wait (connect, write, pool; read: each wait
for the answer's head and for more of its body) raise httpx's exceptions, as do a connection
refused (ConnectError), broken (ReadError, WriteError) or answered with something that is not
HTTP/1.1 (RemoteProtocolError). Connections are kept alive and reused for their own origin, at
most `limits.max_connections` open at once; each connects to an address the egress policy checked
(`EgressPolicy.connect`), so a refused one raises EgressRefused. Closing an answer before its
end closes its connection (the server sees the client go). No proxies and no HTTP/2, as
httpx's transport used for these agents had neither.
"""

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, cast

import httptools
import httpx

from runql.agents.egress import EgressPolicy

# Body bytes held for a reader that has not taken them before the socket stops being read.
HIGH_WATER = 1 << 20
_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def _origin(url: httpx.URL) -> Origin:
    return (url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 80))


def _wake(waiter: "asyncio.Future[bool] | None", value: bool = True) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(value)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: the protocol asyncio feeds, the parser it feeds, and the state
    of the one answer it is reading."""

    def __init__(self, pool: "_Pool", origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.lost = False
        self._parser = httptools.HttpResponseParser(self)
        self._error: httpx.TransportError | None = None
        self._waiter: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None  # _wait's, firing at or before _deadline
        self._deadline = 0.0
        self._writable: asyncio.Future[bool] | None = None
        self._paused = False
        self._start_answer()

    def _start_answer(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self._body: list[bytes] = []
        self._buffered = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as error:
            self._error = httpx.RemoteProtocolError(f"The server's answer is not HTTP/1.1: {error}")
            self.close()
        _wake(self._waiter)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if exc is not None and self._error is None:
            self._error = httpx.ReadError(str(exc) or type(exc).__name__)
        _wake(self._waiter)
        _wake(self._writable)
        self.pool.lost(self)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        _wake(self._writable)
        self._writable = None

    # httptools' callbacks

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if 100 <= self.status < 200:  # an interim answer (100 Continue): the real one follows
            self.reason, self.headers = b"", []
        else:
            self.head_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True
            self.keep_alive = self._parser.should_keep_alive()  # while the parser knows

    # the request's side

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.lost

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def _wait(self, seconds: float | None) -> bool:
        """Until something arrives or the connection ends: False when `timeout` passed first.

        The connection keeps one timer for its waits rather than one a wait (a stream's reads
        come tens of times a second, each a timer made and cancelled): a wait moves the
        deadline, and the timer, when it fires early, waits on until the deadline it finds."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        if seconds is not None:
            self._deadline = loop.time() + seconds
            if self._timer is None or self._timer.when() > self._deadline:
                self._expire_at(loop)
        try:
            return await waiter
        finally:
            self._waiter = None

    def _expire_at(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(self._deadline, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self._waiter is None:  # the next wait sets a timer of its own
            return
        if loop.time() >= self._deadline:
            _wake(self._waiter, False)
        else:
            self._expire_at(loop)

    def _ended(self, where: str) -> httpx.TransportError:
        if self._error is not None:
            return self._error
        return httpx.RemoteProtocolError(f"The server closed the connection {where}.")

    async def send(self, head: bytes, body: bytes, seconds: float | None) -> None:
        assert self.transport is not None
        self._start_answer()
        if self.lost or self.transport.is_closing():  # uvloop raises on a write to a closed one
            raise httpx.WriteError("The connection closed before the request was sent.")
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)
        writable = self._writable
        if writable is None:
            return
        try:
            async with asyncio.timeout(seconds):
                await writable
        except TimeoutError:
            raise httpx.WriteTimeout("Sending the request timed out.") from None
        if self.lost:
            raise httpx.WriteError(str(self._error or "The connection was lost while sending."))

    async def head(self, seconds: float | None) -> None:
        """Until the answer's status line and headers are in."""
        while not self.head_done:
            if self.lost or self._error is not None:
                raise self._ended("without sending an answer")
            if not await self._wait(seconds):
                raise httpx.ReadTimeout("The server sent no answer in time.")

    async def read(self, seconds: float | None) -> bytes:
        """The answer's body that arrived since the last read (waiting for some); b"" at its
        end."""
        while not self._body:
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            if self.lost:
                if self._delimited_by_close():
                    self.complete = True
                    return b""
                raise self._ended("before the end of its answer")
            if not await self._wait(seconds):
                raise httpx.ReadTimeout("The server sent nothing more in time.")
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return body

    def _delimited_by_close(self) -> bool:
        """An answer of neither a length nor chunks, which ends when its connection does."""
        names = {name.lower() for name, _value in self.headers}
        return self.head_done and not names & {b"content-length", b"transfer-encoding"}


class _Pool:
    """Connections by origin: the idle ones kept (newest reused first), at most `limits`
    open; a request that finds none free waits (its pool timeout) for one to be released."""

    def __init__(self, policy: EgressPolicy, ssl_context: ssl.SSLContext, limits: httpx.Limits):
        self.policy = policy
        self.ssl_context = ssl_context
        self.max_connections = limits.max_connections
        self.max_idle = limits.max_keepalive_connections
        self.expiry = limits.keepalive_expiry
        self.open: set[_Connection] = set()
        self.idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._waiting: deque[asyncio.Future[bool]] = deque()

    async def acquire(self, url: httpx.URL, timeouts: dict[str, Any]) -> _Connection:
        origin = _origin(url)
        while (found := self._reuse(origin)) is None and not self._room():
            await self._wait_for_room(timeouts.get("pool"))
        if found is not None:
            return found
        connection = _Connection(self, origin)
        self.open.add(connection)
        try:
            await self._connect(connection, timeouts.get("connect"))
        except BaseException:
            self.drop(connection)
            raise
        return connection

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self.idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if not connection.lost and not self._expired(connection, now):
                return connection
            self.drop(connection)
        return None

    def _expired(self, connection: _Connection, now: float) -> bool:
        return self.expiry is not None and now - connection.idle_since > self.expiry

    def _room(self) -> bool:
        """Whether another connection may be opened, an idle one (of another origin) closed to
        make room when every one allowed is open."""
        if self.max_connections is None or len(self.open) < self.max_connections:
            return True
        victim = self._oldest_idle()
        if victim is None:
            return False
        self.drop(victim)
        return True

    async def _wait_for_room(self, seconds: float | None) -> None:
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            async with asyncio.timeout(seconds):
                await waiter
        except TimeoutError:
            raise httpx.PoolTimeout("No connection came free in time.") from None
        finally:
            if waiter in self._waiting:
                self._waiting.remove(waiter)

    def _oldest_idle(self) -> _Connection | None:
        oldest: _Connection | None = None
        for connections in self.idle.values():
            if connections and (oldest is None or connections[0].idle_since < oldest.idle_since):
                oldest = connections[0]
        if oldest is not None:
            self.idle[oldest.origin].remove(oldest)
            self._idle_count -= 1
        return oldest

    async def _connect(self, connection: _Connection, seconds: float | None) -> None:
        scheme, host, port = connection.origin
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"Agents connect over http or https, not {scheme}.")
        secure = scheme == "https"
        loop = asyncio.get_running_loop()

        async def open_to(address: str) -> None:
            await loop.create_connection(
                lambda: connection,
                address,
                port,
                ssl=self.ssl_context if secure else None,
                server_hostname=host if secure else None,
            )

        try:
            async with asyncio.timeout(seconds):
                await self.policy.connect(host, port, open_to)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"Connecting to {host} timed out.") from None
        except OSError as error:
            raise httpx.ConnectError(f"Could not connect to {host}: {error}") from None

    def release(self, connection: _Connection) -> None:
        """The connection's answer is done with: kept for reuse if it may be, else closed."""
        if connection not in self.open:
            return
        if (
            connection.reusable
            and not connection._body
            and (self.max_idle is None or self._idle_count < self.max_idle)
        ):
            connection.idle_since = time.monotonic()
            self.idle.setdefault(connection.origin, []).append(connection)
            self._idle_count += 1
        else:
            self.drop(connection)
        self._notify()

    def lost(self, connection: _Connection) -> None:
        """Its server closed it (or it was closed): an idle one is forgotten at once."""
        idle = self.idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)
            self._idle_count -= 1
            self.drop(connection)

    def drop(self, connection: _Connection) -> None:
        """Closed and forgotten; a request waiting for room may open one."""
        if connection in self.open:
            self.open.discard(connection)
            self._notify()
        connection.close()

    def _notify(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return

    def close(self) -> None:
        for connection in list(self.open):
            self.drop(connection)
        self.idle.clear()
        self._idle_count = 0


def _head(request: httpx.Request, body: bytes) -> bytes:
    lines = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value:
            raise httpx.LocalProtocolError("A request header holds a line break.")
        if name.lower() == b"transfer-encoding":
            continue  # the body is read whole and sent with its length
        lines += [name, b": ", value, b"\r\n"]
    if body and "content-length" not in request.headers:
        lines += [b"Content-Length: ", str(len(body)).encode("ascii"), b"\r\n"]
    lines.append(b"\r\n")
    return b"".join(lines)


class _Body(httpx.AsyncByteStream):
    """An answer's body as it arrives; its end (or closing it) gives the connection back."""

    def __init__(self, pool: _Pool, connection: _Connection, timeout: float | None) -> None:
        self._pool = pool
        self._connection = connection
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        while body := await connection.read(self._timeout):
            yield body

    async def aclose(self) -> None:
        self._pool.release(self._connection)


class Http1Transport(httpx.AsyncBaseTransport):
    """httpx's transport interface over `_Pool`'s connections (see the module's docstring)."""

    def __init__(self, policy: EgressPolicy, ssl_context: ssl.SSLContext, limits: httpx.Limits):
        self._pool = _Pool(policy, ssl_context, limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":  # its answer's length would be read as a body's
            raise httpx.UnsupportedProtocol("This transport sends no HEAD requests.")
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        body = await request.aread()
        head = _head(request, body)
        connection = await self._pool.acquire(request.url, timeouts)
        try:
            await connection.send(head, body, timeouts.get("write"))
            await connection.head(timeouts.get("read"))
        except BaseException:
            self._pool.drop(connection)
            raise
        return httpx.Response(
            connection.status,
            headers=connection.headers,
            stream=_Body(self._pool, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": connection.reason},
        )

    async def aclose(self) -> None:
        self._pool.close()
