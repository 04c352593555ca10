"""What an agent is to runql: given a run and its conversation, it writes a reply, at once
(`Agent.run`) or as it goes (`Streams.stream`: deltas of the message it is writing, tool calls
and their results, attached items, cost)."""

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from runql.enums import ActorType, AttachmentType, ContentPartType, MessageType


class AgentError(Exception):
    """A failure the agent reports; the run ends in ERROR with this code and message."""

    def __init__(self, code: str, message: str, metadata: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.metadata = dict(metadata or {})


class InvalidConfig(ValueError):
    """An agent's config does not suit its kind; the message says what to change."""


@dataclass(frozen=True)
class Part:
    text: str
    type: ContentPartType = ContentPartType.TEXT


@dataclass(frozen=True)
class Attachment:
    type: AttachmentType
    file_id: str | None = None
    url: str | None = None
    caption: str | None = None


@dataclass(frozen=True)
class Turn:
    """One message of the conversation, as an agent reads it."""

    actor_type: ActorType
    actor_name: str
    parts: tuple[Part, ...]
    attachments: tuple[Attachment, ...] = ()

    @property
    def text(self) -> str:
        return "\n".join(part.text for part in self.parts)


@dataclass(frozen=True)
class AgentRequest:
    run_id: str
    agent_id: str
    thread_id: str
    message: Turn
    history: tuple[Turn, ...]
    language: str | None = None
    country: str | None = None
    timezone: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    raw_inputs: Any = None


@dataclass(frozen=True)
class ReplyMessage:
    """A message of the reply, whole. In a stream: a message that is not streamed (a webhook's
    JSON answer), with all its parts and attachments at once; it closes the open message."""

    parts: tuple[Part, ...]
    attachments: tuple[Attachment, ...] = ()
    type: MessageType = MessageType.CONTENT


@dataclass(frozen=True)
class AttachedValue:
    key: str
    value: Any


@dataclass(frozen=True)
class Cost:
    amount: float
    unit: str


@dataclass(frozen=True)
class AgentReply:
    messages: tuple[ReplyMessage, ...]
    attached_items: tuple[AttachedValue, ...] = ()
    cost: Cost | None = None


@dataclass(frozen=True)
class MessageStarted:
    """A stream's next message of content begins: the `TextDelta`s that follow are its text,
    one part of `part_type`, until the next `MessageStarted`, `ToolCall` or `ToolResult`. A delta
    with no message open opens a text message."""

    part_type: ContentPartType = ContentPartType.TEXT


@dataclass(frozen=True)
class TextDelta:
    """The next piece of the open message's text. A message's stored text is the concatenation
    of its deltas, in order."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """The agent calls a tool: a message of type TOOL_CALL, whole (it is not streamed)."""

    name: str
    arguments: Any
    call_id: str | None = None


@dataclass(frozen=True)
class ToolResult:
    """What a tool answered: a message of type TOOL_RESULT, whole."""

    name: str
    result: Any
    call_id: str | None = None


@dataclass(frozen=True)
class AttachmentAdded:
    """An attachment of the open message."""

    attachment: Attachment


# What a streaming agent yields; `ReplyMessage`, `AttachedValue` and `Cost` are the reply's own
# types (a cost reported twice: the last one holds). The stream's end is the run's success; an
# `AgentError` raised from it ends the run in ERROR, keeping what was streamed before.
StreamEvent = (
    MessageStarted
    | TextDelta
    | ToolCall
    | ToolResult
    | AttachmentAdded
    | ReplyMessage
    | AttachedValue
    | Cost
)


def tool_message(event: ToolCall | ToolResult) -> ReplyMessage:
    """How a tool call or result is stored: a message of type TOOL_CALL / TOOL_RESULT with one
    JSON part, `{"name", "arguments", "call_id"}` / `{"name", "result", "call_id"}`."""
    if isinstance(event, ToolCall):
        type, body = MessageType.TOOL_CALL, {"name": event.name, "arguments": event.arguments}
    else:
        type, body = MessageType.TOOL_RESULT, {"name": event.name, "result": event.result}
    body["call_id"] = event.call_id
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return ReplyMessage((Part(text, ContentPartType.JSON),), type=type)


class Agent(Protocol):
    """One configured agent. `run` may raise AgentError; anything else is reported too. An
    executor keeps one agent per agent and version and runs them concurrently on it."""

    async def run(self, request: AgentRequest) -> AgentReply: ...


@runtime_checkable
class Streams(Protocol):
    """An agent that reports progress while it runs. The executor runs such an agent through
    `stream` (its `run` is what a caller without a stream gets); what the run ends with is
    exactly what it streamed.

    The executor reads the stream in a task of its own and writes what it yielded at most every
    50 ms (runql.lifecycle.streaming). When the run is cancelled, or its time runs out, that task
    is cancelled and the stream closed (`aclose()`): an async generator releases what it holds
    (an HTTP stream) in `finally`, within a second; what it yielded before is kept."""

    def stream(self, request: AgentRequest) -> AsyncIterator[StreamEvent]: ...


class AgentKind(Protocol):
    """A kind of agent (`echo`, `webhook`, or a third party's through the `runql.agents`
    entry-point group): it checks configs and makes agents from them."""

    name: str

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config with defaults filled in; raises InvalidConfig."""
        ...

    def create(self, config: Mapping[str, Any]) -> Agent: ...


@runtime_checkable
class ReachesOut(Protocol):
    """A kind whose agents connect to addresses their config names (see `runql.agents.egress`)."""

    async def check_egress(self, config: Mapping[str, Any]) -> None:
        """Raises InvalidConfig when the checked `config` names an address that is refused."""
        ...


@runtime_checkable
class Closable(Protocol):
    """An agent that holds resources (a webhook's connections): closed once no run needs it."""

    async def aclose(self) -> None: ...


class _Collector:
    """The reply a stream adds up to, message by message."""

    def __init__(self) -> None:
        self.messages: list[ReplyMessage] = []
        self.items: list[AttachedValue] = []
        self.cost: Cost | None = None
        self._open: tuple[ContentPartType, list[str], list[Attachment]] | None = None

    def _close(self) -> None:
        if self._open is not None:
            part_type, texts, attachments = self._open
            parts = (Part("".join(texts), part_type),) if texts or not attachments else ()
            self.messages.append(ReplyMessage(parts, tuple(attachments)))
            self._open = None

    def _opened(self) -> tuple[ContentPartType, list[str], list[Attachment]]:
        if self._open is None:
            self._open = (ContentPartType.TEXT, [], [])
        return self._open

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, MessageStarted):
            self._close()
            self._open = (event.part_type, [], [])
        elif isinstance(event, TextDelta):
            self._opened()[1].append(event.text)
        elif isinstance(event, AttachmentAdded):
            self._opened()[2].append(event.attachment)
        elif isinstance(event, ToolCall | ToolResult):
            self._close()
            self.messages.append(tool_message(event))
        elif isinstance(event, ReplyMessage):
            self._close()
            self.messages.append(event)
        elif isinstance(event, AttachedValue):
            self.items.append(event)
        else:
            self.cost = event

    def reply(self) -> AgentReply:
        self._close()
        return AgentReply(tuple(self.messages), tuple(self.items), self.cost)


async def collect(events: AsyncIterator[StreamEvent]) -> AgentReply:
    """The reply a stream adds up to, for a caller without a stream (`Agent.run` of a
    streaming agent): each message's text is the concatenation of its deltas; a tool call or
    result is its `tool_message`; the last cost holds. An AgentError the stream raises is
    raised here; the stream is closed either way."""
    collector = _Collector()
    try:
        async for event in events:
            collector.add(event)
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
    return collector.reply()
