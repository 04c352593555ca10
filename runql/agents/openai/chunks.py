"""Reading a Chat Completions stream: each chunk's text delta, tool-call fragments, finish and
usage, checked as they arrive (the SDK builds chunks without validating them, so a field of
the wrong type reaches here as it was sent); and the errors a stream ends with, as the
AgentErrors a run ends with.

Codes: `rate_limited` (429), `upstream_error` (5xx), `timeout`, `connection_failed` (before
the answer started), `stream_interrupted` (the connection broke, or the stream ended before
the model finished), `stream_error` (an error chunk mid-stream), `malformed_stream` (a chunk
that is not JSON or not a chunk), `unauthorized` (401, 403), `request_rejected` (other 4xx),
`missing_api_key`, `egress_refused`.
"""

import json
from dataclasses import dataclass, field
from typing import Any, NoReturn

import openai
from openai.types import CompletionUsage
from openai.types.chat.chat_completion_chunk import (
    ChatCompletionChunk,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)

from runql.agents.egress import EgressRefused
from runql.agents.protocol import AgentError, ToolCall
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
        AgentError(malformed_stream)."""
        if not isinstance(chunk, ChatCompletionChunk):
            malformed("not a chat.completion.chunk")
        self._usage(chunk.usage)
        choices = chunk.choices
        if not isinstance(choices, list):
            malformed("choices is not a list")
        if not choices:
            return ""
        choice = choices[0]
        if not isinstance(choice, Choice) or not isinstance(choice.delta, ChoiceDelta):
            malformed("choices[0] has no delta object")
        if choice.finish_reason is not None:
            self.finished = _text(choice.finish_reason, "finish_reason")
        self._tool_calls(choice.delta.tool_calls)
        return _text(choice.delta.content, "delta.content")

    def _usage(self, usage: object) -> None:
        if usage is None:
            return
        total = usage.total_tokens if isinstance(usage, CompletionUsage) else None
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            malformed("usage.total_tokens is not a whole number")
        self.total_tokens = total

    def _tool_calls(self, fragments: object) -> None:
        if fragments is None:
            return
        if not isinstance(fragments, list):
            malformed("delta.tool_calls is not a list")
        for fragment in fragments:
            if not isinstance(fragment, ChoiceDeltaToolCall) or not isinstance(fragment.index, int):
                malformed("a tool call has no index")
            call = self.calls.setdefault(fragment.index, _Call())
            if fragment.id is not None:
                call.id = _text(fragment.id, "tool_calls.id")
            function = fragment.function
            if function is None:
                continue
            if not isinstance(function, ChoiceDeltaToolCallFunction):
                malformed("tool_calls.function is not an object")
            call.name += _text(function.name, "tool_calls.function.name")
            call.arguments.append(_text(function.arguments, "tool_calls.function.arguments"))

    def tool_calls(self) -> list[ToolCall]:
        return [self.calls[index].event() for index in sorted(self.calls)]


def _said(error: openai.APIError) -> str:
    text = " ".join(str(error.message).split())
    return text[:MAX_ERROR_TEXT]


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
        return AgentError("stream_error", f"The model's server reported an error: {_said(error)}")
    if isinstance(error, ValueError):  # a chunk that is not JSON
        return AgentError(MALFORMED, "The model's server sent a chunk that is not JSON.")
    raise error
