"""The run graph as the planner reads it: for each GraphQL object type, its table and the fields
that are not a plain column (links, lists, values made of columns). A plain field reads the
column its strawberry field names, as the default resolver does; a field with a resolver of its
own that is not declared here is not covered (the planner says Unsupported)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table

from runql.agents.secrets import shown_config
from runql.fastpath.connections import (
    Check,
    groups_of,
    root_agents,
    root_runs,
    root_threads,
    runs_of,
)
from runql.fastpath.values import decoded
from runql.ids import Kind
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


@dataclass(frozen=True)
class ToOne:
    """The object whose id is in `column` (looked up in the caller's organization)."""

    target: str
    column: str


@dataclass(frozen=True)
class ToMany:
    """The objects whose `parent` column holds this object's id, in `order`."""

    target: str
    parent: str
    order: tuple[str, ...]
    many: bool = True


@dataclass(frozen=True)
class RunOf:
    """MessageGroup.run."""


@dataclass(frozen=True)
class ListOf:
    """A connection of the objects whose `parent` column holds this object's id."""

    target: str
    parent: str
    check: Check


@dataclass(frozen=True)
class Made:
    """An object made of columns (its fields are positions in what `make` returns), or null."""

    columns: tuple[str, ...]
    make: Callable[..., tuple[Any, ...] | None]
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Shown:
    """A leaf computed from one column."""

    column: str
    convert: Callable[[Any], Any]


Spec = ToOne | ToMany | RunOf | ListOf | Made | Shown


@dataclass(frozen=True)
class TypeModel:
    table: Table
    fields: dict[str, Spec] = field(default_factory=dict)


def _cost(amount: float | None, unit: str | None) -> tuple[float, str] | None:
    """As resolvers.graph.run_cost."""
    return None if amount is None or unit is None else (amount, unit)


def _error(code: str | None, message: str | None) -> tuple[str, str] | None:
    """As resolvers.graph.message_error."""
    return None if code is None else (code, message or "")


def _config(value: Any) -> Any:
    """As resolvers.graph.agent_config: header values and URL credentials hidden."""
    return shown_config(decoded(value))


def _table(row: type[Any]) -> Table:
    table: Table = row.__table__
    return table


TYPES: dict[str, TypeModel] = {
    "Run": TypeModel(
        _table(RunRow),
        {
            "cost": Made(("cost_amount", "cost_unit"), _cost, ("amount", "unit")),
            "agent": ToOne("Agent", "agent_id"),
            "thread": ToOne("Thread", "thread_id"),
            "messageGroup": ToOne("MessageGroup", "message_group_id"),
            "triggerMessageGroup": ToOne("MessageGroup", "trigger_message_group_id"),
            "errors": ToMany("RunError", "run_id", ("created_at", "id")),
            "attachedItems": ToMany("AttachedItem", "run_id", ("run_id", "created_at", "id")),
        },
    ),
    "Agent": TypeModel(
        _table(AgentRow),
        {
            "config": Shown("config", _config),
            "runs": ListOf("Run", "agent_id", runs_of),
        },
    ),
    "Thread": TypeModel(
        _table(ThreadRow),
        {
            "agent": ToOne("Agent", "agent_id"),
            "runs": ListOf("Run", "thread_id", runs_of),
            "messageGroups": ListOf("MessageGroup", "thread_id", groups_of),
        },
    ),
    "Actor": TypeModel(_table(ActorRow)),
    "ContentPart": TypeModel(_table(ContentPartRow)),
    "Attachment": TypeModel(_table(AttachmentRow)),
    "MessageContent": TypeModel(
        _table(MessageContentRow),
        {
            "parts": ToMany("ContentPart", "content_id", ("position",)),
            "attachments": ToMany("Attachment", "content_id", ("position",)),
        },
    ),
    "Message": TypeModel(
        _table(MessageRow),
        {
            "error": Made(("error_code", "error_message"), _error, ("code", "message")),
            "actor": ToOne("Actor", "actor_id"),
            "content": ToMany("MessageContent", "message_item_id", (), many=False),
            "messageGroup": ToOne("MessageGroup", "message_group_id"),
        },
    ),
    "AttachedItem": TypeModel(
        _table(AttachedItemRow),
        {
            "actor": ToOne("Actor", "actor_id"),
            "run": ToOne("Run", "run_id"),
        },
    ),
    "MessageGroup": TypeModel(
        _table(MessageGroupRow),
        {
            "messages": ToMany(
                "Message", "message_group_id", ("message_group_id", "position", "id")
            ),
            "attachedItems": ToMany(
                "AttachedItem", "message_group_id", ("message_group_id", "created_at", "id")
            ),
            "run": RunOf(),
            "parent": ToOne("MessageGroup", "parent_message_group_id"),
            "thread": ToOne("Thread", "thread_id"),
        },
    ),
    "RunError": TypeModel(
        _table(RunErrorRow),
        {
            "run": ToOne("Run", "run_id"),
        },
    ),
}

# What `node(id:)` finds for each kind of id (as resolvers.queries._node_loaders).
NODE_TYPES: dict[Kind, str] = {
    Kind.RUN: "Run",
    Kind.AGENT: "Agent",
    Kind.THREAD: "Thread",
    Kind.MESSAGE_GROUP: "MessageGroup",
    Kind.MESSAGE: "Message",
    Kind.ACTOR: "Actor",
    Kind.CONTENT: "MessageContent",
    Kind.PART: "ContentPart",
    Kind.ATTACHMENT: "Attachment",
    Kind.ITEM: "AttachedItem",
    Kind.ERROR: "RunError",
}

# The root fields that find one object by id, and the kind of id each takes.
ROOT_OBJECTS: dict[str, Kind] = {
    "run": Kind.RUN,
    "agent": Kind.AGENT,
    "thread": Kind.THREAD,
    "messageGroup": Kind.MESSAGE_GROUP,
    "actor": Kind.ACTOR,
}

# The root connections: the type listed and the resolver's checks.
ROOT_LISTS: dict[str, tuple[str, Check]] = {
    "runs": ("Run", root_runs),
    "agents": ("Agent", root_agents),
    "threads": ("Thread", root_threads),
}
