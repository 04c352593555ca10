"""The webhook agent: POSTs the run and its conversation to a URL and reads the reply.

The request body is JSON::

    {"run": {"id", "agent_id", "thread_id", "language", "country", "timezone",
             "metadata", "raw_inputs"},
     "message": {"actor": {"type", "name"}, "text", "parts": [{"type", "text"}],
                 "attachments": [{"type", "file_id", "url", "caption"}]},
     "history": [<messages like "message", oldest first>]}

sent with `Idempotency-Key: <run id>`, so a receiver can tell a retry from a new run.

A 2xx reply is either the full shape::

    {"messages": [{"parts": [{"type", "text"}], "attachments": [{"type", "file_id"?,
                   "url"?, "caption"?}]}],
     "attached_items": [{"key", "value"}],          (optional)
     "cost": {"amount", "unit"}}                     (optional)

or the shorthand `{"text": "..."}`. 408, 429, 5xx and connection failures are retried with
a short exponential backoff; the whole call, retries included, ends within `timeout_s`.
The URL's addresses must pass the egress policy (`runql.agents.egress`) when the config is
saved and again on every connection.
"""

import asyncio
import datetime as dt
import email.utils
import json
import math
import re
import ssl
import uuid
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx

from runql.agents.egress import EgressPolicy, EgressRefused
from runql.agents.protocol import (
    AgentError,
    AgentReply,
    AgentRequest,
    AttachedValue,
    Attachment,
    Cost,
    InvalidConfig,
    Part,
    ReplyMessage,
    Turn,
)
from runql.enums import AttachmentType, ContentPartType

DEFAULT_TIMEOUT_S = 30
MAX_TIMEOUT_S = 300
DEFAULT_RETRIES = 2
MAX_RETRIES = 5
CONFIG_KEYS = ("url", "timeout_s", "retries", "headers")

# Headers runql sets itself (or that would break the request if a config set them).
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "transfer-encoding", "host", "connection",
     "idempotency-key"}
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")

FIRST_BACKOFF_S = 0.1
MAX_RETRY_AFTER_S = 5.0
MAX_REPLY_BYTES = 10 * 1024 * 1024
MAX_ERROR_TEXT = 500

RETRYABLE_STATUSES = frozenset({408, 429})
PART_TYPES = ", ".join(member.value for member in ContentPartType)
ATTACHMENT_TYPES = ", ".join(member.value for member in AttachmentType)


# --- config -----------------------------------------------------------------------------


def _check_url(value: object) -> str:
    problem = InvalidConfig("url must be an absolute http or https URL with a host")
    if not isinstance(value, str) or not value or value != value.strip():
        raise problem
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise problem
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or too big
        parsed = httpx.URL(value)
    except (ValueError, httpx.InvalidURL):
        raise problem from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or not parsed.host:
        raise problem
    return value


def _check_timeout(value: object) -> int | float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_TIMEOUT_S
    ):
        raise InvalidConfig(
            f"timeout_s must be a number of seconds above 0 and at most {MAX_TIMEOUT_S}"
        )
    return value


def _check_retries(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_RETRIES:
        raise InvalidConfig(f"retries must be a whole number from 0 to {MAX_RETRIES}")
    return value


def _check_headers(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidConfig("headers must be an object of header names to string values")
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for name, header_value in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise InvalidConfig(
                f"headers: {str(name)[:40]!r} is not a valid header name (letters, digits "
                "and !#$%&'*+-.^_`|~ only)"
            )
        if name.lower() in RESERVED_HEADERS:
            raise InvalidConfig(
                f"headers may not set {name}; runql sets "
                f"{', '.join(sorted(RESERVED_HEADERS))} itself"
            )
        if name.lower() in seen:
            raise InvalidConfig(f"headers names {name} more than once")
        seen.add(name.lower())
        if not isinstance(header_value, str) or not _HEADER_VALUE.match(header_value):
            raise InvalidConfig(
                f"headers: the value of {name} must be a string of printable ASCII characters"
            )
        headers[name] = header_value
    return headers


# --- request ----------------------------------------------------------------------------


def _turn(turn: Turn) -> dict[str, Any]:
    return {
        "actor": {"type": turn.actor_type.value, "name": turn.actor_name},
        "text": turn.text,
        "parts": [{"type": part.type.value, "text": part.text} for part in turn.parts],
        "attachments": [
            {"type": item.type.value, "file_id": item.file_id, "url": item.url,
             "caption": item.caption}
            for item in turn.attachments
        ],
    }


def request_body(request: AgentRequest) -> dict[str, Any]:
    """The JSON document a webhook receives for `request`."""
    return {
        "run": {
            "id": request.run_id,
            "agent_id": request.agent_id,
            "thread_id": request.thread_id,
            "language": request.language,
            "country": request.country,
            "timezone": request.timezone,
            "metadata": dict(request.metadata),
            "raw_inputs": request.raw_inputs,
        },
        "message": _turn(request.message),
        "history": [_turn(turn) for turn in request.history],
    }


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _encode(request: AgentRequest) -> bytes:
    try:
        text = json.dumps(
            request_body(request), default=_json_default, ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise AgentError(
            "invalid_request", f"The run's metadata or inputs cannot be sent as JSON: {exc}"
        ) from None
    return text.encode("utf-8")


@cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes a while; every client shares one context.
    return httpx.create_ssl_context()


# --- reply ------------------------------------------------------------------------------


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not JSON")


def _loads(content: bytes) -> Any:
    """Decoded JSON, strictly: no NaN or Infinity (ValueError or RecursionError if not)."""
    return json.loads(content, parse_constant=_not_json)


class _Misfit(Exception):
    """The reply does not fit the shape; the message says where."""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Misfit(f"{where} must be an object, not {_short(value)}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Misfit(f"{where} must be a list, not {_short(value)}")
    return value


def _string(value: object, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        kind = "a string or null" if optional else "a string"
        raise _Misfit(f"{where} must be {kind}, not {_short(value)}")
    return value


def _part(value: object, where: str) -> Part:
    item = _object(value, where)
    text = _string(item.get("text"), f"{where}.text")
    raw_type = item.get("type", ContentPartType.TEXT.value)
    try:
        part_type = ContentPartType(raw_type if isinstance(raw_type, str) else "")
    except ValueError:
        raise _Misfit(f"{where}.type must be one of {PART_TYPES}, not {_short(raw_type)}") from None
    assert text is not None
    return Part(text=text, type=part_type)


def _attachment(value: object, where: str) -> Attachment:
    item = _object(value, where)
    raw_type = item.get("type")
    try:
        kind = AttachmentType(raw_type if isinstance(raw_type, str) else "")
    except ValueError:
        raise _Misfit(
            f"{where}.type must be one of {ATTACHMENT_TYPES}, not {_short(raw_type)}"
        ) from None
    file_id = _string(item.get("file_id"), f"{where}.file_id", optional=True)
    url = _string(item.get("url"), f"{where}.url", optional=True)
    caption = _string(item.get("caption"), f"{where}.caption", optional=True)
    if not file_id and not url:
        raise _Misfit(f"{where} needs a file_id or a url")
    return Attachment(type=kind, file_id=file_id, url=url, caption=caption)


def _message(value: object, where: str) -> ReplyMessage:
    item = _object(value, where)
    parts = tuple(
        _part(part, f"{where}.parts[{index}]")
        for index, part in enumerate(_list(item.get("parts", []), f"{where}.parts"))
    )
    attachments = tuple(
        _attachment(attachment, f"{where}.attachments[{index}]")
        for index, attachment in enumerate(
            _list(item.get("attachments", []), f"{where}.attachments")
        )
    )
    if not parts and not attachments:
        raise _Misfit(f"{where} has neither parts nor attachments")
    return ReplyMessage(parts=parts, attachments=attachments)


def _attached_item(value: object, where: str) -> AttachedValue:
    item = _object(value, where)
    key = _string(item.get("key"), f"{where}.key")
    if not key:
        raise _Misfit(f"{where}.key must not be empty")
    if "value" not in item:
        raise _Misfit(f"{where} has no value")
    return AttachedValue(key=key, value=item["value"])


def _cost(value: object) -> Cost | None:
    if value is None:
        return None
    item = _object(value, "cost")
    amount = item.get("amount")
    if (
        isinstance(amount, bool)
        or not isinstance(amount, int | float)
        or not math.isfinite(amount)
        or amount < 0
    ):
        raise _Misfit(f"cost.amount must be a number from 0 up, not {_short(amount)}")
    unit = _string(item.get("unit"), "cost.unit")
    if not unit:
        raise _Misfit("cost.unit must not be empty")
    return Cost(amount=float(amount), unit=unit)


def _or_empty(value: object) -> object:
    return [] if value is None else value


def parse_reply(document: object) -> AgentReply:
    """An AgentReply from a webhook's decoded JSON reply; raises AgentError("invalid_reply")."""
    try:
        reply = _object(document, "the reply")
        if "messages" in reply and "text" in reply:
            raise _Misfit("the reply has both messages and text; send one of them")
        if "messages" in reply:
            messages = tuple(
                _message(message, f"messages[{index}]")
                for index, message in enumerate(_list(reply["messages"], "messages"))
            )
        elif "text" in reply:
            text = _string(reply["text"], "text")
            assert text is not None
            messages = (ReplyMessage(parts=(Part(text=text),)),)
        else:
            raise _Misfit('the reply has neither "messages" nor "text"')
        items = tuple(
            _attached_item(item, f"attached_items[{index}]")
            for index, item in enumerate(
                _list(_or_empty(reply.get("attached_items")), "attached_items")
            )
        )
        cost = _cost(reply.get("cost"))
    except _Misfit as misfit:
        raise AgentError("invalid_reply", f"The agent's reply does not fit: {misfit}.") from None
    return AgentReply(messages=messages, attached_items=items, cost=cost)


# --- the agent --------------------------------------------------------------------------


class _Retry(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(self, description: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
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


def _status_text(response: httpx.Response) -> str:
    reason = response.reason_phrase
    return f"HTTP {response.status_code} {reason}" if reason else f"HTTP {response.status_code}"


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


class WebhookAgent:
    def __init__(self, url: str, timeout_s: float, retries: int,
                 headers: Mapping[str, str], egress: EgressPolicy = EgressPolicy()) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.headers = dict(headers)
        self.egress = egress

    def __repr__(self) -> str:
        # No URL or headers: they may hold credentials.
        return f"WebhookAgent(timeout_s={self.timeout_s!r}, retries={self.retries!r})"

    async def run(self, request: AgentRequest) -> AgentReply:
        body = _encode(request)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": request.run_id,
            **self.headers,
        }
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                return await self._call(body, headers, deadline)
        except TimeoutError:
            raise AgentError(
                "agent_timeout",
                f"The agent did not answer within {self.timeout_s:g} seconds.",
                {"timeout_s": self.timeout_s},
            ) from None

    async def _call(self, body: bytes, headers: dict[str, str], deadline: float) -> AgentReply:
        loop = asyncio.get_running_loop()
        # httpx's own timeouts are a backstop only; asyncio.timeout_at ends the call first.
        timeout = httpx.Timeout(self.timeout_s + 1)
        async with httpx.AsyncClient(
            timeout=timeout, transport=self.egress.transport(_ssl_context()),
            follow_redirects=False,
        ) as client:
            attempt = 0
            while True:
                attempt += 1
                try:
                    return await self._attempt(client, body, headers)
                except _Retry as failure:
                    last = failure
                if attempt > self.retries:
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

    async def _attempt(
        self, client: httpx.AsyncClient, body: bytes, headers: dict[str, str]
    ) -> AgentReply:
        try:
            async with client.stream("POST", self.url, content=body, headers=headers) as response:
                content = await self._read(response)
        except httpx.TransportError as exc:
            raise _Retry(self._describe(exc)) from None
        except EgressRefused as refused:
            raise AgentError("egress_refused", f"The agent's URL is refused: {refused}.") from None
        except httpx.DecodingError:
            raise AgentError(
                "invalid_reply", "The agent's reply could not be decoded (bad Content-Encoding)."
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            if content is None:
                raise AgentError(
                    "invalid_reply",
                    f"The agent's reply is larger than {MAX_REPLY_BYTES // (1024 * 1024)} MB.",
                )
            try:
                document = _loads(content)
            except (ValueError, RecursionError):
                raise AgentError("invalid_reply", "The agent's reply is not JSON.") from None
            return parse_reply(document)
        if status in RETRYABLE_STATUSES or 500 <= status < 600:
            raise _Retry(
                _status_text(response),
                status=status,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if 400 <= status < 500:
            self._rejected(response, content)
        raise AgentError(
            "invalid_reply",
            f"The agent answered with {_status_text(response)}; runql expects 2xx "
            "(redirects are not followed).",
            {"status": status},
        )

    @staticmethod
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

    def _rejected(self, response: httpx.Response, content: bytes | None) -> NoReturn:
        metadata = {"status": response.status_code}
        error: object = None
        if content:
            try:
                document = _loads(content)
            except (ValueError, RecursionError):
                document = None
            if isinstance(document, Mapping):
                error = document.get("error")
        if isinstance(error, Mapping):
            code, message = error.get("code"), error.get("message")
            if isinstance(code, str) and code.strip():
                if not isinstance(message, str) or not message.strip():
                    message = f"The agent refused the request with {_status_text(response)}."
                raise AgentError(
                    code.strip()[:100], self._redact(message)[:MAX_ERROR_TEXT], metadata
                )
        raise AgentError(
            "agent_rejected",
            f"The agent refused the request with {_status_text(response)}.",
            metadata,
        )

    def _describe(self, exc: httpx.TransportError) -> str:
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
        parts = urlsplit(self.url)
        userinfo = parts.netloc.rpartition("@")[0]
        secrets = [self.url, userinfo, parts.query]
        if parts.password:
            secrets.append(parts.password)
        if parts.username and len(parts.username) >= 4:
            secrets.append(parts.username)
        secrets.extend(value for value in self.headers.values() if len(value) >= 8)
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            text = text.replace(secret, "[redacted]")
        return text


class WebhookKind:
    name = "webhook"

    def __init__(self, egress: EgressPolicy = EgressPolicy()) -> None:
        self.egress = egress

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(config, Mapping):
            raise InvalidConfig("a webhook config must be an object")
        unknown = set(config) - set(CONFIG_KEYS)
        if unknown:
            raise InvalidConfig(
                f"webhook takes only {', '.join(CONFIG_KEYS)}, not "
                f"{', '.join(sorted(map(str, unknown)))}"
            )
        if "url" not in config:
            raise InvalidConfig("url is required: the http or https URL to POST runs to")
        return {
            "url": _check_url(config["url"]),
            "timeout_s": _check_timeout(config.get("timeout_s", DEFAULT_TIMEOUT_S)),
            "retries": _check_retries(config.get("retries", DEFAULT_RETRIES)),
            "headers": _check_headers(config.get("headers", {})),
        }

    async def check_egress(self, config: Mapping[str, Any]) -> None:
        try:
            await self.egress.check_url(config["url"])
        except EgressRefused as refused:
            raise InvalidConfig(f"url: {refused}") from None

    def create(self, config: Mapping[str, Any]) -> WebhookAgent:
        checked = self.validate_config(config)
        return WebhookAgent(
            checked["url"], checked["timeout_s"], checked["retries"], checked["headers"],
            self.egress,
        )
