"""The webhook's wire format: the JSON a webhook receives and the JSON it answers with. It is
a contract others implement, so it is written here once, as pydantic models (their JSON
schemas: `python -m runql.agents.webhook`).

A run is POSTed as `WebhookRequest` with `Idempotency-Key: <run id>`. A 2xx answer is a
`FullReply` or the shorthand `TextReply`; a 4xx may carry a `Refusal`, whose code ends the run.

A 2xx answer may instead stream (`Content-Type: text/event-stream`, each event a `data:` line,
or `application/x-ndjson`, each event a line): `StreamedEvent`s, one JSON object each, ended by
`{"type": "end"}`. Each event is checked as it arrives, by the rules a JSON reply follows.
"""

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from runql.agents.protocol import (
    AgentError,
    AgentReply,
    AgentRequest,
    AttachedValue,
    Attachment,
    AttachmentAdded,
    Cost,
    MessageStarted,
    Part,
    ReplyMessage,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolResult,
    Turn,
)
from runql.agents.webhook.checks import misfit, must_be, said, short
from runql.enums import ActorType, AttachmentType, ContentPartType
from runql.errors import BadUserInput
from runql.text import check_value

INVALID_REPLY = "invalid_reply"

_ONE_OF_PARTS = "one of " + ", ".join(member.value for member in ContentPartType)
_ONE_OF_ATTACHMENTS = "one of " + ", ".join(member.value for member in AttachmentType)

Text = Annotated[StrictStr, must_be("a string")]
OptionalText = Annotated[StrictStr | None, must_be("a string or null")]
Key = Annotated[StrictStr, Field(min_length=1), must_be("a non-empty string")]
PartType = Annotated[ContentPartType, Field(strict=False), must_be(_ONE_OF_PARTS)]
AttachmentKind = Annotated[AttachmentType, Field(strict=False), must_be(_ONE_OF_ATTACHMENTS)]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False), must_be("a number from 0 up")]


class _Shape(BaseModel):
    # Keys the format does not name are ignored, so either side may add some.
    model_config = ConfigDict(
        strict=True, extra="ignore", frozen=True, json_schema_serialization_defaults_required=True
    )


# --- both ways ---------------------------------------------------------------------------


class PartDocument(_Shape):
    type: PartType = Field(ContentPartType.TEXT, description="How to read the text.")
    text: Text


class AttachmentDocument(_Shape):
    type: AttachmentKind
    file_id: OptionalText = None
    url: OptionalText = None
    caption: OptionalText = None

    @model_validator(mode="after")
    def _points_somewhere(self) -> "AttachmentDocument":
        if not self.file_id and not self.url:
            raise misfit("needs a file_id or a url")
        return self

    def attachment(self) -> Attachment:
        return Attachment(type=self.type, file_id=self.file_id, url=self.url, caption=self.caption)


# --- the request -------------------------------------------------------------------------


class RunDocument(_Shape):
    id: str
    agent_id: str
    thread_id: str
    language: str | None = Field(description="BCP 47, as the run was created with.")
    country: str | None = Field(description="ISO 3166-1 alpha-2.")
    timezone: str | None = Field(description="An IANA time zone.")
    metadata: dict[str, Any]
    raw_inputs: Any


class ActorDocument(_Shape):
    type: ActorType
    name: str


class TurnDocument(_Shape):
    actor: ActorDocument
    text: str = Field(description="The parts' texts joined by newlines.")
    parts: list[PartDocument]
    attachments: list[AttachmentDocument]


class WebhookRequest(_Shape):
    """What a webhook receives for a run: the run, its message and the thread before it."""

    run: RunDocument
    message: TurnDocument
    history: list[TurnDocument] = Field(description="The thread's earlier messages, oldest first.")


def _part(part: Part) -> PartDocument:
    return PartDocument.model_construct(type=part.type, text=part.text)


def _attachment(item: Attachment) -> AttachmentDocument:
    return AttachmentDocument.model_construct(
        type=item.type, file_id=item.file_id, url=item.url, caption=item.caption
    )


def _turn(turn: Turn) -> TurnDocument:
    return TurnDocument.model_construct(
        actor=ActorDocument.model_construct(type=turn.actor_type, name=turn.actor_name),
        text=turn.text,
        parts=[_part(part) for part in turn.parts],
        attachments=[_attachment(item) for item in turn.attachments],
    )


def webhook_request(request: AgentRequest) -> WebhookRequest:
    """The document a webhook receives for `request` (runql's own data: not validated again)."""
    run = RunDocument.model_construct(
        id=request.run_id,
        agent_id=request.agent_id,
        thread_id=request.thread_id,
        language=request.language,
        country=request.country,
        timezone=request.timezone,
        metadata=dict(request.metadata),
        raw_inputs=request.raw_inputs,
    )
    return WebhookRequest.model_construct(
        run=run, message=_turn(request.message), history=[_turn(turn) for turn in request.history]
    )


def request_body(request: AgentRequest) -> dict[str, Any]:
    """The JSON document a webhook receives for `request`, as Python values."""
    return webhook_request(request).model_dump(mode="python", warnings=False)


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def encode_request(request: AgentRequest) -> bytes:
    """The request's body in UTF-8 JSON; raises AgentError("invalid_request") when the run's
    metadata or inputs hold what JSON cannot carry (NaN, objects)."""
    try:
        text = json.dumps(
            request_body(request), default=_json_default, ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise AgentError(
            "invalid_request", f"The run's metadata or inputs cannot be sent as JSON: {exc}"
        ) from None


# --- the reply ---------------------------------------------------------------------------


class MessageDocument(_Shape):
    parts: list[PartDocument] = []
    attachments: list[AttachmentDocument] = []

    @model_validator(mode="after")
    def _not_empty(self) -> "MessageDocument":
        if not self.parts and not self.attachments:
            raise misfit("has neither parts nor attachments")
        return self

    def message(self) -> ReplyMessage:
        return ReplyMessage(
            parts=tuple(Part(text=part.text, type=part.type) for part in self.parts),
            attachments=tuple(item.attachment() for item in self.attachments),
        )


class AttachedItemDocument(_Shape):
    key: Key
    value: Any = Field(description="Any JSON value, null included; stored with the run.")


class CostDocument(_Shape):
    amount: Amount
    unit: Key = Field(description='What the amount counts, such as "usd" or "tokens".')


class _Extras(_Shape):
    attached_items: list[AttachedItemDocument] | None = Field(
        None, description="Values stored with the run by key; null is none."
    )
    cost: CostDocument | None = Field(None, description="What the run cost; null is unknown.")

    def _reply(self, messages: tuple[ReplyMessage, ...]) -> AgentReply:
        items = tuple(
            AttachedValue(key=item.key, value=item.value) for item in self.attached_items or ()
        )
        cost = None if self.cost is None else Cost(self.cost.amount, self.cost.unit)
        return AgentReply(messages=messages, attached_items=items, cost=cost)


class FullReply(_Extras):
    """A 2xx answer: the agent's messages, and what else the run produced."""

    messages: list[MessageDocument]

    def reply(self) -> AgentReply:
        return self._reply(tuple(message.message() for message in self.messages))


class TextReply(_Extras):
    """The shorthand for one message of one text part."""

    text: Text

    def reply(self) -> AgentReply:
        return self._reply((ReplyMessage(parts=(Part(text=self.text),)),))


class RefusalDetail(BaseModel):
    code: StrictStr = Field(description="Becomes the run's error code (up to 100 characters).")
    message: Any = Field(
        None, description="Becomes the error's message when it is a non-empty string."
    )


class Refusal(BaseModel):
    """What a 4xx answer may carry to end the run with its own error code."""

    error: RefusalDetail


def _does_not_fit(complaint: str) -> NoReturn:
    raise AgentError(INVALID_REPLY, f"The agent's reply does not fit: {complaint}.")


def _shape(document: object) -> type[FullReply | TextReply]:
    if not isinstance(document, Mapping):
        return FullReply  # which refuses it: the reply must be an object
    if "messages" in document and "text" in document:
        _does_not_fit("the reply has both messages and text; send one of them")
    if "text" in document:
        return TextReply
    if "messages" not in document:
        _does_not_fit('the reply has neither "messages" nor "text"')
    return FullReply


def parse_reply(document: object) -> AgentReply:
    """An AgentReply from a webhook's decoded JSON reply; raises AgentError("invalid_reply")."""
    shape = _shape(document)
    try:
        return shape.model_validate(document).reply()
    except ValidationError as error:
        _does_not_fit(said(error.errors(include_url=False)[0], "the reply"))


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not JSON")


def loads(content: bytes) -> Any:
    """Decoded JSON, strictly: no NaN or Infinity (ValueError or RecursionError if not)."""
    return json.loads(content, parse_constant=_not_json)


def decode_reply(content: bytes) -> AgentReply:
    """The AgentReply in a 2xx answer's body; raises AgentError("invalid_reply")."""
    try:
        document = loads(content)
    except (ValueError, RecursionError):
        raise AgentError(INVALID_REPLY, "The agent's reply is not JSON.") from None
    return parse_reply(document)


def refusal(content: bytes | None) -> tuple[str, str | None] | None:
    """The code and message (None when it has none) of a 4xx answer's `Refusal`, if it is
    one with a code."""
    if not content:
        return None
    try:
        detail = Refusal.model_validate(loads(content)).error
    except (ValueError, RecursionError):  # ValidationError is a ValueError
        return None
    code, message = detail.code.strip(), detail.message
    if not code:
        return None
    return code, message if isinstance(message, str) and message.strip() else None


# --- the streamed reply --------------------------------------------------------------------

# A streamed answer's media types; any other 2xx answer is read as one JSON reply.
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
STREAM_TYPES = frozenset({SSE, NDJSON})
MAX_ERROR_CODE = 100
MAX_ERROR_TEXT = 500


class MessageEvent(_Shape):
    """The next message begins: the deltas after it are its text, one part of `part_type`."""

    type: Literal["message"]
    part_type: PartType = Field(ContentPartType.TEXT, description="How to read its text.")

    def event(self) -> StreamEvent:
        return MessageStarted(self.part_type)


class DeltaEvent(_Shape):
    """The next piece of the open message's text (a delta with no message open opens one)."""

    type: Literal["delta"]
    text: Text

    def event(self) -> StreamEvent:
        return TextDelta(self.text)


class AttachmentEvent(_Shape):
    """An attachment of the open message."""

    type: Literal["attachment"]
    attachment: AttachmentDocument

    def event(self) -> StreamEvent:
        return AttachmentAdded(self.attachment.attachment())


class ToolCallEvent(_Shape):
    """The agent called a tool: a message of its own, whole."""

    type: Literal["tool_call"]
    name: Key
    arguments: Any = Field(None, description="Any JSON value.")
    id: OptionalText = Field(None, description="Pairs the call with its result.")

    def event(self) -> StreamEvent:
        return ToolCall(self.name, self.arguments, self.id)


class ToolResultEvent(_Shape):
    """What a tool answered: a message of its own, whole."""

    type: Literal["tool_result"]
    name: Key
    result: Any = Field(None, description="Any JSON value.")
    id: OptionalText = None

    def event(self) -> StreamEvent:
        return ToolResult(self.name, self.result, self.id)


class ItemEvent(_Shape):
    """A value stored with the run by key (an attached item)."""

    type: Literal["item"]
    key: Key
    value: Any = Field(description="Any JSON value, null included.")

    def event(self) -> StreamEvent:
        return AttachedValue(self.key, self.value)


class CostEvent(_Shape):
    """What the run cost; reported twice, the last one holds."""

    type: Literal["cost"]
    amount: Amount
    unit: Key

    def event(self) -> StreamEvent:
        return Cost(self.amount, self.unit)


class ErrorEvent(_Shape):
    """The run failed: it ends in ERROR with this code (up to 100 characters) and message,
    keeping what was streamed before."""

    type: Literal["error"]
    code: Key
    message: Text = ""

    def error(self) -> AgentError:
        message = self.message.strip() or f"The agent reported {self.code}."
        return AgentError(self.code[:MAX_ERROR_CODE], message[:MAX_ERROR_TEXT])


class EndEvent(_Shape):
    """The answer is complete; a stream without it is an error."""

    type: Literal["end"]


StreamedEvent = Annotated[
    MessageEvent
    | DeltaEvent
    | AttachmentEvent
    | ToolCallEvent
    | ToolResultEvent
    | ItemEvent
    | CostEvent
    | ErrorEvent
    | EndEvent,
    Field(discriminator="type"),
]
_EVENT = TypeAdapter[Any](StreamedEvent)
EVENT_TYPES = ("message", "delta", "attachment", "tool_call", "tool_result", "item", "cost")
_ALL_TYPES = ", ".join(f'"{name}"' for name in (*EVENT_TYPES, "error", "end"))


def _bad_event(number: int, complaint: str, kind: str | None = None) -> NoReturn:
    which = f"event {number}" if kind is None else f"event {number} ({kind})"
    raise AgentError(INVALID_REPLY, f"The agent's {which} does not fit: {complaint}.")


def parse_event(data: bytes | str, number: int) -> StreamEvent | ErrorEvent | EndEvent:
    """Event `number` (from 1) of a streamed answer, checked; raises AgentError(
    "invalid_reply") naming it."""
    try:
        document = loads(data.encode() if isinstance(data, str) else data)
    except (ValueError, RecursionError):
        _bad_event(number, "it is not JSON")
    kind = document.get("type") if isinstance(document, Mapping) else None
    if not isinstance(kind, str) or kind not in (*EVENT_TYPES, "error", "end"):
        _bad_event(number, f"its type must be one of {_ALL_TYPES}, not {short(kind)}")
    try:
        parsed = _EVENT.validate_python(document)
        check_value(document, "")
    except ValidationError as error:
        details = error.errors(include_url=False)[0]
        details["loc"] = details["loc"][1:]  # the union's tag
        _bad_event(number, said(details, "the event"), kind)
    except BadUserInput as error:
        _bad_event(number, error.message, kind)
    if isinstance(parsed, ErrorEvent | EndEvent):
        return parsed
    event: StreamEvent = parsed.event()
    return event


def reply_events(reply: AgentReply) -> list[StreamEvent]:
    """A whole reply (a JSON answer) as a stream's events: each message whole, then the
    attached items and the cost."""
    return [*reply.messages, *reply.attached_items, *([reply.cost] if reply.cost else [])]


def schemas() -> dict[str, Any]:
    """The JSON schemas of the request (every key is sent), a 2xx reply (either shape), a 4xx
    refusal and one event of a streamed reply."""
    return {
        "request": WebhookRequest.model_json_schema(mode="serialization"),
        "reply": TypeAdapter(FullReply | TextReply).json_schema(),
        "refusal": Refusal.model_json_schema(),
        "event": _EVENT.json_schema(),
    }
