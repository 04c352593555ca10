"""The REST contract as pydantic models: what `POST /runs` reads, what `GET /runs` takes, the
documents REST answers with, and the error body. /openapi.json takes its components from them.

Request models check shape and types only; what a value means (ids, BCP 47 tags, countries,
zones, the text rule, sizes) is the service layer's (runql.lifecycle), shared with GraphQL.
The document models list the spec's keys in the spec's order; runql.rest.documents builds the
documents as plain dicts (a model per row would slow `GET /runs`) and the tests validate its
answers against these models, key order included.
"""

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy import JSON, Column

from runql.encoding import number
from runql.enums import (
    ActorType,
    AttachmentType,
    ContentPartType,
    MessageGroupStatus,
    MessageGroupType,
    MessageStatus,
    MessageType,
    RunStatus,
)
from runql.ids import Kind, id_pattern
from runql.limits import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from runql.storage.graph import OBJECTS, OBJECTS_BY_TABLE
from runql.storage.types import UTCDateTime


def _id(kind: Kind) -> WithJsonSchema:
    """An id's schema: documentation only, the service layer checks ids (runql.ids.require)."""
    return WithJsonSchema(
        {
            "type": "string",
            "pattern": id_pattern(kind),
            "examples": [f"{kind.value}_Rm4Mnheq2bfEPhBhP7SY"],
        }
    )


RunId = Annotated[str, _id(Kind.RUN)]
AgentId = Annotated[str, _id(Kind.AGENT)]
ThreadId = Annotated[str, _id(Kind.THREAD)]
GroupId = Annotated[str, _id(Kind.MESSAGE_GROUP)]
MessageId = Annotated[str, _id(Kind.MESSAGE)]
ActorId = Annotated[str, _id(Kind.ACTOR)]
ContentId = Annotated[str, _id(Kind.CONTENT)]
PartId = Annotated[str, _id(Kind.PART)]
AttachmentId = Annotated[str, _id(Kind.ATTACHMENT)]
ItemId = Annotated[str, _id(Kind.ITEM)]
ErrorId = Annotated[str, _id(Kind.ERROR)]
Instant = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "format": "date-time", "examples": ["2025-01-01T00:00:00.000Z"]}
    ),
]
JsonObject = dict[str, Any]


class Closed(BaseModel):
    """A document: exactly these keys, every one always present."""

    model_config = ConfigDict(extra="forbid")


class Cost(Closed):
    """What a run cost."""

    amount: Annotated[float, PlainSerializer(number), WithJsonSchema({"type": "number"})] = Field(
        description="How much, in `unit`: a whole amount is written as an integer (1)."
    )
    unit: str


class Actor(Closed):
    """Who wrote a message or attached an item."""

    id: ActorId
    name: str
    type: ActorType
    metadata: JsonObject
    created_at: Instant
    updated_at: Instant


class Attachment(Closed):
    """A file or link attached to a message."""

    id: AttachmentId
    type: AttachmentType
    file_id: str | None
    url: str | None
    caption: str | None


class ContentPart(Closed):
    """A piece of a message's text."""

    id: PartId
    type: ContentPartType
    text: str


class MessageContent(Closed):
    """What a message says."""

    id: ContentId
    message_item_id: MessageId
    attachments: list[Attachment]
    parts: list[ContentPart]


class MessageError(Closed):
    """Why a message failed."""

    code: str
    message: str


class Message(Closed):
    """One message of a message group."""

    id: MessageId
    status: MessageStatus
    type: MessageType
    message_group_id: GroupId
    thread_id: ThreadId
    actor: Actor | None
    content: MessageContent | None
    error: MessageError | None
    created_at: Instant


class AttachedItem(Closed):
    """A value an actor attached under a key."""

    id: ItemId
    actor: Actor | None
    key: str
    value: Any
    created_at: Instant


class RunSummary(Closed):
    """The run that wrote a message group."""

    id: RunId
    agent_id: AgentId
    status: RunStatus
    metadata: JsonObject
    started_at: Instant | None
    created_at: Instant
    completed_at: Instant | None


class MessageGroup(Closed):
    """The message group a run wrote: the agent's reply."""

    id: GroupId
    status: MessageGroupStatus
    type: MessageGroupType
    created_at: Instant
    thread_id: ThreadId
    parent_message_group_id: GroupId | None
    metadata: JsonObject
    messages: list[Message]
    attached_items: list[AttachedItem]
    run: RunSummary


class RunError(Closed):
    """An error that occurred during a run."""

    id: ErrorId
    run_id: RunId
    code: str
    message: str
    metadata: JsonObject
    created_at: Instant


class _RunSpec(Closed):
    id: RunId
    status: RunStatus = Field(description="Where the run is in its life.")
    agent_id: AgentId
    trigger_message_group_id: GroupId
    cost: Cost | None = Field(description="Null until the run has a cost.")
    message_group: MessageGroup | None = Field(
        description="The reply the run wrote; null until it writes one."
    )
    errors: list[RunError]
    attached_items: list[AttachedItem]
    started_at: Instant | None
    created_at: Instant
    completed_at: Instant | None


def _column_type(column: Column[Any]) -> Any:
    """A shown column's type in a document: an id of the object a foreign key names, an
    instant, a JSON value (an object unless the column is nullable), or the column's own."""
    if isinstance(column.type, JSON):
        return Any if column.nullable else JsonObject
    if column.foreign_keys:
        target = OBJECTS_BY_TABLE[next(iter(column.foreign_keys)).column.table]
        assert target.kind is not None
        found: Any = Annotated[str, _id(target.kind)]
    elif isinstance(column.type, UTCDateTime):
        found = Instant
    else:
        found = column.type.python_type
    return found | None if column.nullable else found


def _shown_fields(name: str) -> dict[str, Any]:
    """The fields of the columns REST shows of object `name` (runql.storage.graph)."""
    found = OBJECTS[name]
    return {key: (_column_type(found.table.c[key]), ...) for key in found.shown}


if TYPE_CHECKING:
    _RunShown = _RunSpec
else:
    _RunShown = create_model("_RunShown", __base__=_RunSpec, **_shown_fields("Run"))


class Run(_RunShown):
    """One execution of an agent on a message. After the spec's keys: thread_id, language,
    country, timezone, metadata and raw_inputs."""


class Pagination(Closed):
    """Where the page is. `next_cursor` (for `after`) and `prev_cursor` (for `before`) are the
    page's ends, null only for an empty page; `has_more_after` and `has_more_before` say
    whether there are runs beyond them now."""

    has_more_before: bool
    has_more_after: bool
    next_cursor: str | None
    prev_cursor: str | None


class RunList(Closed):
    """A page of runs."""

    items: list[Run]
    pagination: Pagination


def _string_when_present(schema: dict[str, Any]) -> None:
    schema.pop("default")
    schema.pop("anyOf")
    schema["type"] = "string"


def _absent(description: str) -> Any:
    """A key left out of the document when it has no value (never null)."""
    return Field(default=None, description=description, json_schema_extra=_string_when_present)


class Error(BaseModel):
    """Every error. `code` is stable: bad_user_input, unauthenticated, not_found, conflict,
    method_not_allowed, payload_too_large, unsupported_media_type, internal_server_error."""

    status: int = Field(description="The HTTP status.")
    code: str
    message: str
    field: str | None = _absent("The parameter, body field or header at fault, where there is one.")
    error_id: str | None = _absent("For a 500: the id of the report in the server's log.")

    def body(self) -> dict[str, Any]:
        """The error's JSON body: `field` and `error_id` only where there is one."""
        return self.model_dump(exclude_none=True)


# Requests ---------------------------------------------------------------------------------

CONTENT_KINDS = "a string, or an object with parts and attachments"


class Input(BaseModel):
    """A request object: a key it does not know is refused, named, with the keys it does."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name in value:
                if name not in cls.model_fields:
                    raise PydanticCustomError(
                        "unknown_field",
                        "is not a field here; the fields are {fields}",
                        {"name": name, "fields": ", ".join(cls.model_fields)},
                    )
        return value


def _part_type(value: Any) -> Any:
    """A part without a type (or a null one) is text."""
    return ContentPartType.TEXT if value is None else value


class ContentPartInput(Input):
    type: Annotated[ContentPartType, BeforeValidator(_part_type)] = Field(
        default=ContentPartType.TEXT, description="How to read the text; text by default."
    )
    text: str


class AttachmentInput(Input):
    """A file_id, a url, or both."""

    type: AttachmentType = Field(description="What it points at.")
    file_id: str | None = None
    url: Annotated[str, WithJsonSchema({"type": "string", "format": "uri"})] | None = None
    caption: str | None = None


class StructuredContent(Input):
    parts: list[ContentPartInput] | None = None
    attachments: list[AttachmentInput] | None = None


def _content_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "Text"
    return "Structured" if isinstance(value, dict) else None


CONTENT_TAGS = frozenset({"Text", "Structured"})  # in a validation error's location, not fields

Content = Annotated[
    Annotated[str, Tag("Text")] | Annotated[StructuredContent, Tag("Structured")],
    Discriminator(
        _content_kind,
        custom_error_type="content_type",
        custom_error_message=f"must be {CONTENT_KINDS}",
    ),
]


class CreateRun(Input):
    """The spec's body, plus `thread_id` to continue a thread."""

    agent_id: AgentId = Field(description="The agent to run.")
    content: Content = Field(description="The message: text, or parts and attachments.")
    thread_id: ThreadId | None = Field(
        default=None,
        description="Continue this thread (of the same agent); a new thread otherwise.",
    )
    language: str | None = Field(
        default=None, description="A BCP 47 tag, like en-GB; stored in canonical case."
    )
    country: str | None = Field(default=None, description="An ISO 3166-1 alpha-2 code, like US.")
    timezone: str | None = Field(
        default=None, description="An IANA time zone, like America/New_York."
    )
    metadata: JsonObject | None = Field(
        default=None,
        description="A JSON object, stored with the run, within the caps on stored JSON.",
    )
    raw_inputs: JsonObject | None = Field(
        default=None, description="A JSON object, stored as it is, within the caps on stored JSON."
    )


class TimeRange(Input):
    gt: Instant | None = None
    gte: Instant | None = None
    lt: Instant | None = None
    lte: Instant | None = None


def _range(name: str) -> Any:
    return Field(
        default=None,
        description=f"{name} within a range: {name}[gte]=…, "
        f"{name}[lt]=… (or {name}.gte=…); operators {', '.join(TimeRange.model_fields)}.",
    )


def _listed(what: str, name: str) -> Any:
    return Field(
        default=None,
        description=f"{what}: one, or several repeated "
        f"({name}=…&{name}=…), comma-separated ({name}=…,…) or as qs and axios write "
        f"arrays ({name}[]=…&{name}[]=… or {name}[0]=…&{name}[1]=…).",
    )


class ListRuns(Input):
    """The query parameters of `GET /runs`, parsed by runql.rest.listing."""

    id: list[RunId] | None = _listed("Run ids", "id")
    status: list[RunStatus] | None = _listed("Statuses", "status")
    agent_id: list[AgentId] | None = _listed("Agent ids", "agent_id")
    thread_id: list[ThreadId] | None = _listed("Thread ids", "thread_id")
    created_at: TimeRange | None = _range("created_at")
    started_at: TimeRange | None = _range("started_at")
    completed_at: TimeRange | None = _range("completed_at")
    limit: int = Field(
        default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="How many runs in the page."
    )
    after: str | None = Field(
        default=None, description="The page after this cursor (a `next_cursor`)."
    )
    before: str | None = Field(
        default=None, description="The page before this cursor (a `prev_cursor`)."
    )
    order: Literal["desc", "asc"] = Field(
        default="desc", description="By creation time: newest first (desc) or oldest first (asc)."
    )


RESPONSES: tuple[type[BaseModel], ...] = (Run, RunList, Error)
REQUESTS: tuple[type[BaseModel], ...] = (CreateRun, TimeRange)
