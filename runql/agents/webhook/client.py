"""The webhook's HTTP side: one httpx client per agent (and config), shared by its runs, over
the egress transport; a call retried within its deadline; failures as the AgentErrors a run
ends with, never repeating the URL's credentials or configured header values.

408, 429, 5xx and connection failures are retried with a short exponential backoff (longer
when a Retry-After asks, up to MAX_RETRY_AFTER_S); the whole call, retries included, ends
within `timeout_s`. Redirects are not followed.

A 2xx answer that streams events (`EventStream`) is handed over once its headers have come,
within `timeout_s`; from then on nothing is retried (its events are the run's), and each read
of it may wait `timeout_s`.
"""

import asyncio
import datetime as dt
import email.utils
import re
import ssl
from collections.abc import AsyncIterator
from functools import cache
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx

from runql.agents.egress import EgressPolicy, EgressRefused
from runql.agents.protocol import AgentError
from runql.agents.sse import lines_of, sse_data
from runql.agents.webhook.config import WebhookConfig
from runql.agents.webhook.wire import INVALID_REPLY, NDJSON, SSE, STREAM_TYPES, refusal
from runql.settings import MAX_IN_FLIGHT

FIRST_BACKOFF_S = 0.1
MAX_RETRY_AFTER_S = 5.0
MAX_REPLY_BYTES = 10 * 1024 * 1024  # a JSON reply's body, and a stream's events in all
MAX_EVENT_BYTES = 1024 * 1024  # one streamed event
MAX_ERROR_TEXT = 500
RETRYABLE_STATUSES = frozenset({408, 429})

# One agent's connections from one process. A run sends one request at a time, so the
# executor's runs in flight (RUNQL_WORKERS) bound the requests an agent has open; this bounds
# its sockets under that cap too (further requests wait for a free one, within their timeout).
# Every connection may be kept alive: a burst of runs reuses the sockets of the runs before it
# rather than connecting (and checking the address) again. Idle connections are kept for 5 s
# (httpx's default; uvicorn, like many servers, closes idle ones after 5 s, and a longer
# expiry would pick sockets the receiver has already closed).
POOL_LIMITS = httpx.Limits(
    max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT, keepalive_expiry=5.0
)


_TRANSPORT_ERRORS: tuple[tuple[type[httpx.TransportError], str], ...] = (
    (httpx.ConnectTimeout, "connecting timed out"),
    (httpx.ReadTimeout, "reading the reply timed out"),
    (httpx.WriteTimeout, "sending the request timed out"),
    (httpx.PoolTimeout, "no connection was free in time"),
    (httpx.ConnectError, "could not connect"),
    (httpx.RemoteProtocolError, "the connection broke off"),
    (httpx.ReadError, "reading the reply failed"),
    (httpx.WriteError, "sending the request failed"),
    (httpx.ProxyError, "the proxy failed"),
)


@cache
def ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes a while; every client shares one context.
    return httpx.create_ssl_context()


class _Retry(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(
        self, description: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(description)
        self.description = description
        self.status = status
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks to wait (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,9}", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _media_type(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "")).partition(";")[0].strip().lower()


def _status_text(response: httpx.Response) -> str:
    reason = response.reason_phrase
    return f"HTTP {response.status_code} {reason}" if reason else f"HTTP {response.status_code}"


async def _read(response: httpx.Response) -> bytes | None:
    """The reply's body, or None when it is larger than MAX_REPLY_BYTES."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


# What every request carries besides the call's own headers: httpx's client sent these.
_SENT_ALWAYS = {"User-Agent": f"python-httpx/{httpx.__version__}", "Connection": "keep-alive"}


class WebhookClient:
    """POSTs bodies to one agent's URL. Its transport (one connection pool, each connection's
    address checked by the egress policy) is made on the first call and lives until `aclose`.

    Requests go to the transport itself, not through an httpx.AsyncClient: the client's layers
    (auth flow, redirect loop, cookie jar, event hooks, the request built from its defaults)
    were about a seventh of a worker's event loop with hundreds of runs in flight, and a
    webhook uses none of them (redirects are not followed; a cookie one run's answer set would
    have gone with other threads' runs)."""

    def __init__(self, config: WebhookConfig, egress: EgressPolicy) -> None:
        self.config = config
        self.egress = egress
        self._url = httpx.URL(config.url)
        # httpx's own timeouts are a backstop only; asyncio.timeout_at ends the call first.
        self._timeouts = httpx.Timeout(config.timeout_s + 1).as_dict()
        self._transport: httpx.AsyncBaseTransport | None = None

    def _http(self) -> httpx.AsyncBaseTransport:
        if self._transport is None:
            self._transport = self.egress.transport(ssl_context(), POOL_LIMITS)
        return self._transport

    async def aclose(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    async def post(self, body: bytes, run_id: str) -> "bytes | EventStream":
        """The answer to `body`: the body of a 2xx JSON answer, or a 2xx event stream, open
        (its events are read by the caller, who closes it); raises AgentError."""
        headers = {
            "Content-Type": "application/json",
            "Accept": f"application/json, {SSE}, {NDJSON}",
            "Idempotency-Key": run_id,
            **self.config.headers,
        }
        deadline = asyncio.get_running_loop().time() + self.config.timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                return await self._call(body, headers, deadline)
        except TimeoutError:
            raise AgentError(
                "agent_timeout",
                f"The agent did not answer within {self.config.timeout_s:g} seconds.",
                {"timeout_s": self.config.timeout_s},
            ) from None

    async def _call(
        self, body: bytes, headers: dict[str, str], deadline: float
    ) -> "bytes | EventStream":
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(body, headers)
            except _Retry as failure:
                last = failure
            if attempt > self.config.retries:
                self._unavailable(last, attempt)
            wait = FIRST_BACKOFF_S * 2 ** (attempt - 1)
            if last.retry_after is not None:
                wait = max(wait, min(last.retry_after, MAX_RETRY_AFTER_S))
            if loop.time() + wait >= deadline:
                # Waiting would use up the time left: give up now with the real reason.
                self._unavailable(last, attempt)
            await asyncio.sleep(wait)

    def _unavailable(self, failure: _Retry, attempts: int) -> NoReturn:
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        metadata: dict[str, Any] = {"attempts": attempts}
        if failure.status is not None:
            metadata["status"] = failure.status
        raise AgentError(
            "agent_unavailable",
            f"The agent is unavailable: {self._redact(failure.description)} (after {tries}).",
            metadata,
        )

    async def _attempt(self, body: bytes, headers: dict[str, str]) -> "bytes | EventStream":
        request = httpx.Request(
            "POST",
            self._url,
            content=body,
            headers={**_SENT_ALWAYS, **headers},
            extensions={"timeout": self._timeouts},
        )
        try:
            response = await self._http().handle_async_request(request)
            response.request = request
        except httpx.TransportError as exc:
            raise _Retry(self.describe(exc)) from None
        except EgressRefused as refused:
            raise AgentError("egress_refused", f"The agent's URL is refused: {refused}.") from None
        media_type = _media_type(response)
        if 200 <= response.status_code < 300 and media_type in STREAM_TYPES:
            return EventStream(response, media_type, self)
        try:
            content = await _read(response)
        except httpx.TransportError as exc:
            raise _Retry(self.describe(exc)) from None
        except httpx.DecodingError:
            raise AgentError(
                INVALID_REPLY, "The agent's reply could not be decoded (bad Content-Encoding)."
            ) from None
        finally:
            await response.aclose()
        return self._answer(response, content)

    def _answer(self, response: httpx.Response, content: bytes | None) -> bytes:
        status = response.status_code
        if 200 <= status < 300:
            if content is None:
                raise AgentError(
                    INVALID_REPLY,
                    f"The agent's reply is larger than {MAX_REPLY_BYTES // (1024 * 1024)} MB.",
                )
            return content
        if status in RETRYABLE_STATUSES or 500 <= status < 600:
            raise _Retry(
                _status_text(response),
                status=status,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if 400 <= status < 500:
            self._rejected(response, content)
        raise AgentError(
            INVALID_REPLY,
            f"The agent answered with {_status_text(response)}; runql expects 2xx "
            "(redirects are not followed).",
            {"status": status},
        )

    def _rejected(self, response: httpx.Response, content: bytes | None) -> NoReturn:
        metadata = {"status": response.status_code}
        refused = f"The agent refused the request with {_status_text(response)}."
        given = refusal(content)
        if given is None:
            raise AgentError("agent_rejected", refused, metadata)
        code, message = given
        raise self.reported(code, message or refused, metadata)

    def reported(
        self, code: str, message: str, metadata: dict[str, Any] | None = None
    ) -> AgentError:
        """The error an agent reported (a refusal, an error event), its message redacted."""
        return AgentError(code[:100], self._redact(message)[:MAX_ERROR_TEXT], metadata)

    def describe(self, exc: httpx.TransportError) -> str:
        what = next(
            (text for kind, text in _TRANSPORT_ERRORS if isinstance(exc, kind)),
            "the request failed",
        )
        detail = self._redact(str(exc)).strip()
        if detail:
            what = f"{what} ({detail[:200]})"
        return what

    def _redact(self, text: str) -> str:
        """`text` without the URL, its credentials or query, or configured header values."""
        url = self.config.url
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        secrets = [url, userinfo, parts.query]
        if parts.password:
            secrets.append(parts.password)
        if parts.username and len(parts.username) >= 4:
            secrets.append(parts.username)
        secrets.extend(value for value in self.config.headers.values() if len(value) >= 8)
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            text = text.replace(secret, "[redacted]")
        return text


class EventStream:
    """A 2xx answer that streams events (`text/event-stream` or `application/x-ndjson`), open
    until `aclose`. Each read may wait `timeout_s`; the events may add up to MAX_REPLY_BYTES,
    each at most MAX_EVENT_BYTES. Lines end in LF or CRLF."""

    def __init__(self, response: httpx.Response, media_type: str, client: WebhookClient) -> None:
        self.response = response
        self.media_type = media_type
        self._client = client

    async def aclose(self) -> None:
        await self.response.aclose()

    async def events(self) -> AsyncIterator[bytes]:
        """Each event's JSON text: an NDJSON line, or an SSE event's `data` lines joined (its
        `event`, `id` and `retry` fields and comments are ignored)."""
        if self.media_type == NDJSON:
            async for line in self._lines():
                if line.strip():
                    yield line
            return
        async for data in sse_data(self._lines(), unterminated=True):
            yield data

    def _lines(self) -> AsyncIterator[bytes]:
        return lines_of(
            self._chunks(),
            MAX_EVENT_BYTES,
            lambda: self._too_large(f"an event is longer than {MAX_EVENT_BYTES // 2**20} MB"),
        )

    async def _chunks(self) -> AsyncIterator[bytes]:
        timeout_s = self._client.config.timeout_s
        chunks = self.response.aiter_bytes()
        total = 0
        try:
            while True:
                try:
                    async with asyncio.timeout(timeout_s):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                total += len(chunk)
                if total > MAX_REPLY_BYTES:
                    self._too_large(f"the stream is larger than {MAX_REPLY_BYTES // 2**20} MB")
                yield chunk
        except TimeoutError:
            raise AgentError(
                "agent_timeout",
                f"The agent's stream was silent for more than {timeout_s:g} seconds.",
                {"timeout_s": timeout_s},
            ) from None
        except httpx.DecodingError:
            raise AgentError(
                INVALID_REPLY, "The agent's stream could not be decoded (bad Content-Encoding)."
            ) from None
        except httpx.TransportError as exc:
            raise AgentError(
                "stream_interrupted",
                f"The agent's stream broke off: {self._client.describe(exc)}.",
            ) from None

    def _too_large(self, what: str) -> NoReturn:
        raise AgentError(INVALID_REPLY, f"The agent's reply does not fit: {what}.")
