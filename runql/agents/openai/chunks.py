"""Reading a Chat Completions stream: its server-sent events' data (read from the SDK's raw
streaming response, so no chunk object is built: at 100 streams of 50 tokens/s the SDK's
per-chunk models were the process's largest cost), each chunk parsed as JSON and its text
delta, tool-call fragments, finish and usage checked as they arrive; and the errors a stream
ends with, as the AgentErrors a run ends with.

Codes: `rate_limited` (429), `upstream_error` (5xx), `timeout`, `connection_failed` (before
the answer started), `stream_interrupted` (the connection broke, or the stream ended before
the model finished), `stream_error` (an error chunk mid-stream), `malformed_stream` (a chunk
that is not JSON or not a chunk), `unauthorized` (401, 403), `request_rejected` (other 4xx),
`missing_api_key`, `egress_refused`.
"""

import json
import ssl
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

import httpx
import openai

from runql.agents.egress import EgressRefused
from runql.agents.protocol import AgentError, ToolCall
from runql.agents.sse import sse_batches
from runql.text import text_problem

MALFORMED = "malformed_stream"
MAX_ERROR_TEXT = 500


def malformed(what: str) -> NoReturn:
    raise AgentError(MALFORMED, f"The model's server sent a malformed chunk: {what}.")


def _text(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        malformed(f"{where} is not a string")
    problem = text_problem(value)
    if problem is not None:
        malformed(f"{where} {problem}")
    return value


@dataclass
class _Call:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def event(self) -> ToolCall:
        text = "".join(self.arguments)
        try:
            arguments: Any = json.loads(text) if text else {}
        except ValueError:
            arguments = text  # a model may write invalid JSON: kept as it was written
        return ToolCall(name=self.name, arguments=arguments, call_id=self.id)


@dataclass
class Reading:
    """What a stream has said so far, beyond its text."""

    calls: dict[int, _Call] = field(default_factory=dict)
    finished: str | None = None
    total_tokens: int | None = None

    def text(self, chunk: object) -> str:
        """The chunk's text delta (of its first choice), its other parts noted; raises
        AgentError: `stream_error` for an error chunk, `malformed_stream` for a chunk that is
        not one."""
        if not isinstance(chunk, dict):
            malformed("not a chat.completion.chunk")
        if chunk.get("error"):
            raise _error_chunk(chunk["error"])
        self._usage(chunk.get("usage"))
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            malformed("choices is not a list")
        if not choices:
            return ""
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            malformed("choices[0] has no delta object")
        finish = choice.get("finish_reason")
        if finish is not None:
            self.finished = _text(finish, "finish_reason")
        self._tool_calls(delta.get("tool_calls"))
        return _text(delta.get("content"), "delta.content")

    def _usage(self, usage: object) -> None:
        if usage is None:
            return
        total = usage.get("total_tokens") if isinstance(usage, dict) else None
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            malformed("usage.total_tokens is not a whole number")
        self.total_tokens = total

    def _tool_calls(self, fragments: object) -> None:
        if fragments is None:
            return
        if not isinstance(fragments, list):
            malformed("delta.tool_calls is not a list")
        for fragment in fragments:
            index = fragment.get("index") if isinstance(fragment, dict) else None
            if not isinstance(index, int) or isinstance(index, bool):
                malformed("a tool call has no index")
            call = self.calls.setdefault(index, _Call())
            if fragment.get("id") is not None:
                call.id = _text(fragment["id"], "tool_calls.id")
            function = fragment.get("function")
            if function is None:
                continue
            if not isinstance(function, dict):
                malformed("tool_calls.function is not an object")
            call.name += _text(function.get("name"), "tool_calls.function.name")
            call.arguments.append(_text(function.get("arguments"), "tool_calls.function.arguments"))

    def tool_calls(self) -> list[ToolCall]:
        return [self.calls[index].event() for index in sorted(self.calls)]


def _error_chunk(error: object) -> AgentError:
    """An error chunk mid-stream, said as the SDK says one (its message, or a default)."""
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return _reported(message)


def body_pieces(response: openai.AsyncAPIResponse[Any]) -> AsyncIterable[bytes]:
    """The response's body as its transport hands it over. A body sent without a content
    encoding is read from the transport's stream itself: the SDK's `iter_bytes` and httpx's
    `aiter_bytes` and `aiter_raw` would pass each piece on unchanged, three generators deep,
    at every piece of every stream (the SDK's context manager still closes the response)."""
    http = response.http_response
    stream = http.stream
    if http.headers.get("content-encoding", "identity") == "identity" and isinstance(
        stream, httpx.AsyncByteStream
    ):
        return stream
    return response.iter_bytes()


async def stream_data(response: openai.AsyncAPIResponse[Any]) -> AsyncIterator[list[bytes]]:
    """The `data` of the server-sent events of a streaming response, up to `[DONE]` (the rest
    of the body read, so the connection can be reused), a list for each piece of the body that
    completes some (a reader that fell behind takes them together), without building the SDK's
    chunk objects. The transport's errors are raised as the SDK's own stream raises them
    (APITimeoutError, APIConnectionError), for `failure` to name."""
    done = False
    try:
        async for batch in sse_batches(body_pieces(response)):
            if done:
                continue
            for index, data in enumerate(batch):
                if data.startswith(b"[DONE]"):
                    done = True
                    batch = batch[:index]
                    break
            if batch:
                yield batch
    except httpx.TimeoutException as error:
        raise openai.APITimeoutError(request=cast(Any, response.http_request)) from error
    except (httpx.RequestError, ssl.SSLError) as error:
        raise openai.APIConnectionError(request=cast(Any, response.http_request)) from error


def _said(error: openai.APIError | str) -> str:
    text = " ".join(str(error if isinstance(error, str) else error.message).split())
    return text[:MAX_ERROR_TEXT]


def _reported(error: openai.APIError | str) -> AgentError:
    """An error the model's server reported in its stream (an error chunk)."""
    return AgentError("stream_error", f"The model's server reported an error: {_said(error)}")


def _status_error(error: openai.APIStatusError) -> AgentError:
    status = error.status_code
    metadata = {"status": status}
    if isinstance(error, openai.RateLimitError):
        return AgentError(
            "rate_limited",
            f"The model's server is rate limiting (HTTP 429): {_said(error)}",
            metadata,
        )
    if status >= 500:
        return AgentError(
            "upstream_error", f"The model's server failed (HTTP {status}): {_said(error)}", metadata
        )
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return AgentError(
            "unauthorized",
            f"The model's server refused the key (HTTP {status}): {_said(error)}",
            metadata,
        )
    return AgentError(
        "request_rejected",
        f"The model's server rejected the request (HTTP {status}): {_said(error)}",
        metadata,
    )


def failure(error: Exception, started: bool, timeout_s: float) -> AgentError:
    """The AgentError a run ends with for `error`, raised by the SDK or the connection before
    (`started` False) or after the answer began streaming."""
    if isinstance(error, AgentError):
        return error
    if isinstance(error, EgressRefused):
        return AgentError("egress_refused", f"The agent's base_url is refused: {error}.")
    if isinstance(error, openai.APIStatusError):
        return _status_error(error)
    if isinstance(error, openai.APITimeoutError):
        return AgentError(
            "timeout",
            f"The model's server did not answer within {timeout_s:g} seconds.",
            {"timeout_s": timeout_s},
        )
    if isinstance(error, openai.APIConnectionError):
        if started:
            return AgentError("stream_interrupted", "The connection broke off mid-stream.")
        return AgentError("connection_failed", "Could not connect to the model's server.")
    if isinstance(error, openai.APIResponseValidationError):
        return AgentError(MALFORMED, "The model's server sent a malformed chunk.")
    if isinstance(error, openai.APIError):
        return _reported(error)
    if isinstance(error, ValueError):  # a chunk that is not JSON
        return AgentError(MALFORMED, "The model's server sent a chunk that is not JSON.")
    raise error
