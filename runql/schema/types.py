"""The run graph as clients see it: the spec's objects, linked both ways."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from runql.enums import (
    ActorType,
    AttachmentType,
    ContentPartType,
    MessageGroupStatus,
    MessageGroupType,
    MessageStatus,
    MessageType,
    RunEventType,
    RunStatus,
)
from runql.resolvers import graph
from runql.schema import enums as _graphql_enums  # noqa: F401  (documents the enums first)
from runql.schema.arguments import groups_of, list_resolver, runs_of
from runql.schema.node import Connection, Node, rows_of
from runql.storage.tables import (
    ActorRow,
    AgentRow,
    AttachedItemRow,
    AttachmentRow,
    ContentPartRow,
    MessageContentRow,
    MessageGroupRow,
    MessageRow,
    RunErrorRow,
    RunRow,
    ThreadRow,
)


@strawberry.type(description="What a run cost.")
class Cost:
    amount: float = strawberry.field(
        description="How much, in `unit`. A whole amount is written as an integer (1)."
    )
    unit: str = strawberry.field(description="The currency of `amount`, such as credits.")


@strawberry.type(description="Why a message failed.")
class MessageError:
    code: str
    message: str


@strawberry.type(description="An agent: what executes runs. Its `kind` says how.")
class Agent(Node):
    is_type_of = rows_of(AgentRow)

    name: str
    kind: str = strawberry.field(description="The agent implementation, such as `echo`.")
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = strawberry.field(
        description="When the agent was archived; an archived agent takes no new runs."
    )
    config: JSON = strawberry.field(
        resolver=graph.agent_config,
        description="Settings for its kind, such as a webhook URL. Header values and "
        "credentials in URLs are hidden.",
    )
    runs: Connection[Run] = strawberry.field(
        resolver=list_resolver(runs_of, graph.page_of("Agent", "runs")),
        description="The agent's runs, newest first by default.",
    )


@strawberry.type(description="A conversation with one agent: its message groups and runs.")
class Thread(Node):
    is_type_of = rows_of(ThreadRow)

    agent_id: strawberry.ID
    metadata_: JSON = strawberry.field(name="metadata")
    created_at: datetime
    updated_at: datetime
    agent: Agent | None = strawberry.field(resolver=graph.link("Thread", "agent"))
    runs: Connection[Run] = strawberry.field(
        resolver=list_resolver(runs_of, graph.page_of("Thread", "runs")),
        description="Runs in this thread, newest first by default.",
    )
    message_groups: Connection[MessageGroup] = strawberry.field(
        resolver=list_resolver(groups_of, graph.page_of("Thread", "message_groups")),
        description="The conversation, oldest first by default.",
    )


@strawberry.type(
    description="Who wrote a message or attached an item: a user, an agent, or the system."
)
class Actor(Node):
    is_type_of = rows_of(ActorRow)

    name: str
    type: ActorType
    metadata_: JSON = strawberry.field(name="metadata")
    created_at: datetime
    updated_at: datetime


@strawberry.type(description="A piece of a message's text.")
class ContentPart(Node):
    is_type_of = rows_of(ContentPartRow)

    type: ContentPartType
    text: str


@strawberry.type(description="A file or link attached to a message.")
class Attachment(Node):
    is_type_of = rows_of(AttachmentRow)

    type: AttachmentType
    file_id: strawberry.ID | None
    url: str | None
    caption: str | None


@strawberry.type(description="What a message says: its parts, in order, and its attachments.")
class MessageContent(Node):
    is_type_of = rows_of(MessageContentRow)

    message_item_id: strawberry.ID = strawberry.field(
        description="The id of the message this is the content of."
    )
    parts: list[ContentPart] = strawberry.field(resolver=graph.link("MessageContent", "parts"))
    attachments: list[Attachment] = strawberry.field(
        resolver=graph.link("MessageContent", "attachments")
    )


@strawberry.type(description="One message of a message group.")
class Message(Node):
    is_type_of = rows_of(MessageRow)

    status: MessageStatus
    type: MessageType
    message_group_id: strawberry.ID
    thread_id: strawberry.ID
    created_at: datetime
    error: MessageError | None = strawberry.field(resolver=graph.composite("Message", "error"))
    actor: Actor | None = strawberry.field(resolver=graph.link("Message", "actor"))
    content: MessageContent | None = strawberry.field(resolver=graph.link("Message", "content"))
    message_group: MessageGroup | None = strawberry.field(
        resolver=graph.link("Message", "message_group")
    )


@strawberry.type(description="A value an actor attached to a run, under a key.")
class AttachedItem(Node):
    is_type_of = rows_of(AttachedItemRow)

    run_id: strawberry.ID
    key: str
    value: JSON | None
    created_at: datetime
    actor: Actor | None = strawberry.field(resolver=graph.link("AttachedItem", "actor"))
    run: Run | None = strawberry.field(resolver=graph.link("AttachedItem", "run"))


@strawberry.type(
    description="One turn of a conversation: the user's input, or an agent's "
    "reply written by a run."
)
class MessageGroup(Node):
    is_type_of = rows_of(MessageGroupRow)

    status: MessageGroupStatus
    type: MessageGroupType
    thread_id: strawberry.ID
    parent_message_group_id: strawberry.ID | None = strawberry.field(
        description="The group this one answers, for a reply."
    )
    metadata_: JSON = strawberry.field(name="metadata")
    created_at: datetime
    messages: list[Message] = strawberry.field(resolver=graph.link("MessageGroup", "messages"))
    attached_items: list[AttachedItem] = strawberry.field(
        resolver=graph.link("MessageGroup", "attached_items")
    )
    run: Run | None = strawberry.field(
        resolver=graph.link("MessageGroup", "run"),
        description="The run that wrote this group or, for a user's message, the run it triggered.",
    )
    parent: MessageGroup | None = strawberry.field(resolver=graph.link("MessageGroup", "parent"))
    thread: Thread | None = strawberry.field(resolver=graph.link("MessageGroup", "thread"))


@strawberry.type(description="An error that occurred during a run.")
class RunError(Node):
    is_type_of = rows_of(RunErrorRow)

    run_id: strawberry.ID
    code: str
    message: str
    metadata_: JSON = strawberry.field(name="metadata")
    created_at: datetime
    run: Run | None = strawberry.field(resolver=graph.link("RunError", "run"))


@strawberry.type(description="One execution of an agent on a message.")
class Run(Node):
    is_type_of = rows_of(RunRow)

    status: RunStatus
    agent_id: strawberry.ID
    thread_id: strawberry.ID
    trigger_message_group_id: strawberry.ID = strawberry.field(
        description="The message group that triggered the run."
    )
    message_group_id: strawberry.ID | None = strawberry.field(
        description="The message group the run wrote; null until it writes one."
    )
    language: str | None = strawberry.field(
        description="BCP 47 language of the run, in canonical case (en-GB)."
    )
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2 country.")
    timezone: str | None = strawberry.field(description="IANA time zone.")
    metadata_: JSON = strawberry.field(name="metadata")
    raw_inputs: JSON | None
    created_at: datetime
    started_at: datetime | None = strawberry.field(description="Null until the run starts.")
    completed_at: datetime | None = strawberry.field(
        description="Null until the run reaches a terminal status."
    )
    cancel_requested_at: datetime | None = strawberry.field(
        description="When a client asked to cancel the run while it was RUNNING."
    )
    cost: Cost | None = strawberry.field(
        resolver=graph.composite("Run", "cost"), description="Null until the run has a cost."
    )
    agent: Agent | None = strawberry.field(resolver=graph.link("Run", "agent"))
    thread: Thread | None = strawberry.field(resolver=graph.link("Run", "thread"))
    message_group: MessageGroup | None = strawberry.field(
        resolver=graph.link("Run", "message_group"),
        description="The reply the run wrote; a streaming agent's while it streams (IN_PROGRESS).",
    )
    trigger_message_group: MessageGroup | None = strawberry.field(
        resolver=graph.link("Run", "trigger_message_group")
    )
    errors: list[RunError] = strawberry.field(resolver=graph.link("Run", "errors"))
    attached_items: list[AttachedItem] = strawberry.field(
        resolver=graph.link("Run", "attached_items")
    )


@strawberry.type(
    description="One entry of a run's event log: a status change, a message "
    "added, a streamed message's delta, an error added or an item attached."
)
class RunEvent:
    seq: int = strawberry.field(
        description="Numbered from 1 per run, with no gaps: resume with `after: seq`."
    )
    type: RunEventType
    payload: JSON = strawberry.field(
        description="What changed, by id: {status}, {message_group_id, message_id}, "
        "{message_group_id, message_id, offset, text} (a MESSAGE_DELTA: `text` goes at "
        "`offset` of the message's text), {error_id} or {item_id}."
    )
    created_at: datetime
    run: Run | None = strawberry.field(
        resolver=graph.link("RunEvent", "run"), description="The run as it is now."
    )
