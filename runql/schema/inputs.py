"""Input types: filters and orderings, and their conversion to storage filters."""

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from runql.enums import AttachmentType, ContentPartType, RunStatus
from runql.schema import enums as _graphql_enums  # noqa: F401  (documents the enums first)
from runql.storage.filters import RunFilter, TimeRange


@strawberry.enum(description="The order of a list, by creation time; ties broken by id.")
class CreatedOrder(Enum):
    CREATED_AT_DESC = "created_at_desc"
    CREATED_AT_ASC = "created_at_asc"

    @property
    def newest_first(self) -> bool:
        return self is CreatedOrder.CREATED_AT_DESC


@strawberry.input(
    description="A range of instants. Bounds combine with AND; omit one to "
    "leave that side open. `gt` and `gte` (or `lt` and `lte`) exclude each other."
)
class DateTimeRange:
    gt: datetime | None = strawberry.field(default=None, description="After this instant.")
    gte: datetime | None = strawberry.field(default=None, description="At or after this instant.")
    lt: datetime | None = strawberry.field(default=None, description="Before this instant.")
    lte: datetime | None = strawberry.field(default=None, description="At or before this instant.")

    def to_range(self) -> TimeRange:
        return TimeRange(gt=self.gt, gte=self.gte, lt=self.lt, lte=self.lte)


def _tuple(values: list[strawberry.ID] | None) -> tuple[str, ...] | None:
    return tuple(values) if values is not None else None


@strawberry.input(
    name="RunFilter",
    description="Which runs to list. Every given field must match (AND); a list matches any "
    "of its values (a single value is a list of one).",
)
class RunFilterInput:
    id: list[strawberry.ID] | None = strawberry.field(default=None, description="Run ids.")
    status: list[RunStatus] | None = strawberry.field(default=None, description="Statuses.")
    agent_id: list[strawberry.ID] | None = strawberry.field(default=None, description="Agent ids.")
    thread_id: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Thread ids."
    )
    created_at: DateTimeRange | None = strawberry.field(
        default=None, description="When the run was created."
    )
    started_at: DateTimeRange | None = strawberry.field(
        default=None, description="When the run started; runs not yet started never match."
    )
    completed_at: DateTimeRange | None = strawberry.field(
        default=None, description="When the run completed; runs not yet completed never match."
    )

    def to_filter(self) -> RunFilter:
        return RunFilter(
            ids=_tuple(self.id),
            statuses=tuple(s.value for s in self.status) if self.status is not None else None,
            agent_ids=_tuple(self.agent_id),
            thread_ids=_tuple(self.thread_id),
            created_at=self.created_at.to_range() if self.created_at else None,
            started_at=self.started_at.to_range() if self.started_at else None,
            completed_at=self.completed_at.to_range() if self.completed_at else None,
        )


@strawberry.input(description="A piece of text of a message.")
class ContentPartInput:
    text: str
    type: ContentPartType = ContentPartType.TEXT


@strawberry.input(description="A file or link to attach: a fileId, a url, or both.")
class AttachmentInput:
    type: AttachmentType
    file_id: strawberry.ID | None = None
    url: str | None = None
    caption: str | None = None


@strawberry.input(description="A message with several parts or attachments.")
class StructuredContentInput:
    parts: list[ContentPartInput] = strawberry.field(default_factory=list)
    attachments: list[AttachmentInput] = strawberry.field(default_factory=list)


@strawberry.input(
    one_of=True,
    description="The user's message: plain `text`, or "
    "`structured` parts and attachments. Exactly one of them.",
)
class RunContentInput:
    text: strawberry.Maybe[str]
    structured: strawberry.Maybe[StructuredContentInput]


@strawberry.input(
    description="The spec's POST /runs body, plus a thread to continue and an idempotency key."
)
class CreateRunInput:
    agent_id: strawberry.ID = strawberry.field(description="The agent to run.")
    content: RunContentInput
    thread_id: strawberry.ID | None = strawberry.field(
        default=None, description="Continue this thread (of the same agent); a new one otherwise."
    )
    language: str | None = strawberry.field(
        default=None, description="A BCP 47 tag, like en-GB; stored in canonical case."
    )
    country: str | None = strawberry.field(
        default=None, description="An ISO 3166-1 alpha-2 code, like US."
    )
    timezone: str | None = strawberry.field(
        default=None, description="An IANA time zone, like America/New_York."
    )
    metadata: JSON | None = strawberry.field(
        default=None,
        description="A JSON object (capped by RUNQL_MAX_JSON_BYTES and RUNQL_MAX_JSON_DEPTH).",
    )
    raw_inputs: JSON | None = strawberry.field(
        default=None, description="A JSON object, as the spec has it (capped as metadata is)."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Send the same key again (within 24 hours) to get the same run back "
        "instead of a new one; with a different input it is a CONFLICT.",
    )


@strawberry.input(description="A new agent.")
class CreateAgentInput:
    name: str
    kind: str = strawberry.field(description="How it runs, such as `echo` or `webhook`.")
    config: JSON | None = strawberry.field(
        default=None, description="Settings for its kind; checked by the kind."
    )


@strawberry.input(description="Changes to an agent; omitted fields stay as they are.")
class UpdateAgentInput:
    id: strawberry.ID
    name: strawberry.Maybe[str]
    config: strawberry.Maybe[JSON]
