"""A streamed reply while it is being written: what a streaming agent yielded, as steps not
yet stored. The executor's pump adds events as they come; a flush takes every pending step
(runql.lifecycle.conversation writes them in one transaction). Consecutive deltas of one
message wait as one step, so a flush appends them with one update and one MESSAGE_DELTA event.

How the steps are stored:
- a message (opened by `MessageStarted`, or by a delta or attachment when none is open) is a
  CONTENT message with one content part of the started type, stored empty; its text is the
  concatenation of its deltas, each appended by a flush with a MESSAGE_DELTA event;
- a `ReplyMessage` is a whole message, its parts and attachments stored at once; `ToolCall`
  and `ToolResult` are whole messages too (runql.agents.protocol.tool_message: type TOOL_CALL
  / TOOL_RESULT, one JSON part); each closes the open message;
- `AttachedValue` is an attached item; `Cost` is kept (the last one holds) for the run's end.

Every text and value is checked as a whole reply's is (runql.lifecycle.replies): an unfit one
is the agent's `invalid_reply`.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from runql.agents.protocol import (
    AgentError,
    AttachedValue,
    Attachment,
    AttachmentAdded,
    Cost,
    MessageStarted,
    ReplyMessage,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolResult,
    tool_message,
)
from runql.enums import ContentPartType, MessageType
from runql.errors import BadUserInput
from runql.ids import Kind, new_id
from runql.lifecycle.replies import INVALID_REPLY
from runql.text import JsonCaps, check_stored_json, check_text, check_value


@dataclass(frozen=True)
class NewPart:
    id: str
    type: ContentPartType
    text: str = ""


@dataclass(frozen=True)
class Opened:
    """A new message of the reply: a streamed one with one empty part that its deltas fill, or
    a whole one with its parts and attachments."""

    message_id: str
    content_id: str
    position: int
    type: MessageType
    parts: tuple[NewPart, ...]
    attachments: tuple[tuple[str, Attachment], ...] = ()  # with their ids


@dataclass
class Appended:
    """Text for the end of a message's part: the deltas that came since the last flush."""

    message_id: str
    part_id: str
    offset: int  # characters of the message's text before these
    pieces: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True)
class Attached:
    """An attachment of a streamed message."""

    message_id: str
    content_id: str
    attachment_id: str
    position: int
    offset: int
    attachment: Attachment


@dataclass(frozen=True)
class Item:
    item_id: str
    key: str
    value: Any


Step = Opened | Appended | Attached | Item


@dataclass
class _Message:
    """The open message: where its next delta goes."""

    id: str
    content_id: str
    part_id: str
    length: int = 0
    attachments: int = 0


class Draft:
    """The reply a streaming run is writing: its pending steps, its cost, and the ids of what
    was stored so far."""

    def __init__(self, caps: JsonCaps) -> None:
        self.caps = caps
        self.group_id = new_id(Kind.MESSAGE_GROUP)
        self.group_stored = False
        self.actor_id: str | None = None  # known once the group is stored
        self.cost: Cost | None = None
        self._pending: list[Step] = []
        self._open: _Message | None = None
        self._messages = 0
        self._items = 0

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def take(self) -> list[Step]:
        """The pending steps, in order; none are pending after."""
        steps, self._pending = self._pending, []
        return steps

    def add(self, event: StreamEvent) -> None:
        """One event of the agent's stream; raises AgentError (`invalid_reply`) for one that
        cannot be stored."""
        try:
            self._add(event)
        except BadUserInput as error:
            raise AgentError(
                INVALID_REPLY, f"The agent's reply cannot be stored: {error.message}."
            ) from None

    def _add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._delta(event.text)
        elif isinstance(event, MessageStarted):
            self._start(MessageType.CONTENT, ContentPartType(event.part_type))
        elif isinstance(event, ToolCall):
            check_value(event.name, "tool_call.name")
            check_stored_json(event.arguments, "tool_call.arguments", self.caps)
            self._whole(tool_message(event))
        elif isinstance(event, ToolResult):
            check_value(event.name, "tool_result.name")
            check_stored_json(event.result, "tool_result.result", self.caps)
            self._whole(tool_message(event))
        elif isinstance(event, ReplyMessage):
            check_value(asdict(event), f"messages[{self._messages}]")
            self._whole(event)
        elif isinstance(event, AttachmentAdded):
            self._attach(event.attachment)
        elif isinstance(event, AttachedValue):
            where = f"attached_items[{self._items}]"
            check_value(event.key, f"{where}.key")
            check_stored_json(event.value, f"{where}.value", self.caps)
            self._pending.append(Item(new_id(Kind.ITEM), event.key, event.value))
            self._items += 1
        elif isinstance(event, Cost):
            check_value(event.unit, "cost.unit")
            self.cost = event
        else:
            raise BadUserInput(f"{type(event).__name__} is not a stream event", field="stream")

    def _opened(
        self,
        type: MessageType,
        parts: tuple[NewPart, ...],
        attachments: tuple[tuple[str, Attachment], ...] = (),
    ) -> Opened:
        opened = Opened(
            new_id(Kind.MESSAGE), new_id(Kind.CONTENT), self._messages, type, parts, attachments
        )
        self._messages += 1
        self._pending.append(opened)
        return opened

    def _start(self, type: MessageType, part_type: ContentPartType) -> _Message:
        opened = self._opened(type, (NewPart(new_id(Kind.PART), part_type),))
        self._open = _Message(opened.message_id, opened.content_id, opened.parts[0].id)
        return self._open

    def _whole(self, message: ReplyMessage) -> None:
        self._open = None
        parts = tuple(
            NewPart(new_id(Kind.PART), ContentPartType(part.type), part.text)
            for part in message.parts
        )
        attachments = tuple((new_id(Kind.ATTACHMENT), a) for a in message.attachments)
        self._opened(MessageType(message.type), parts, attachments)

    def _current(self) -> _Message:
        return self._open or self._start(MessageType.CONTENT, ContentPartType.TEXT)

    def _delta(self, text: str) -> None:
        check_text(text, "text_delta.text")
        if not text:
            return
        message = self._current()
        last = self._pending[-1] if self._pending else None
        if not (isinstance(last, Appended) and last.message_id == message.id):
            last = Appended(message.id, message.part_id, message.length)
            self._pending.append(last)
        last.pieces.append(text)
        message.length += len(text)

    def _attach(self, attachment: Attachment) -> None:
        for name in ("file_id", "url", "caption"):
            check_text(getattr(attachment, name), f"attachment.{name}")
        message = self._current()
        self._pending.append(
            Attached(
                message.id,
                message.content_id,
                new_id(Kind.ATTACHMENT),
                message.attachments,
                message.length,
                attachment,
            )
        )
        message.attachments += 1
