"""The run graph, declared once: each object's table, the objects it links to, the lists below
it, the values made of several columns, and the columns REST shows beyond the spec's keys.

Everything that walks the graph is derived from `OBJECTS`: the DataLoaders
(runql.resolvers.loaders) and the link resolvers (runql.resolvers.graph) of the standard
executor, the fast path's model (runql.fastpath.model), REST's documents and their contract
(runql.rest). Names are the spec's object names and the tables' snake_case column and relation
names; GraphQL's camelCase is strawberry's conversion of them, made where GraphQL is.

A plain column needs no entry here to reach GraphQL: both executors read the column a schema
field names. A column that REST shows goes in its object's `shown`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlmodel import SQLModel

from runql.ids import Kind
from runql.storage import tables
from runql.storage.reads import With


@dataclass(frozen=True)
class ToOne:
    """The object whose id is in this row's `column`, looked up in the caller's organization."""

    target: str
    column: str


@dataclass(frozen=True)
class ToMany:
    """The `target` rows whose `parent` column holds this row's id, in `order`; with `one`, at
    most one (the parent column is unique). A loader batches them by the parent column, and
    reads in the same statement the children's relations named in `read_with` (a to-one link,
    or a one-child), which the next level then finds loaded."""

    target: str
    parent: str
    order: tuple[str, ...] = ()
    one: bool = False
    read_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class Paged:
    """A connection: the `target` rows whose `parent` column holds this row's id, a keyset page
    at a time on (created_at, id) (runql.storage.pages), counted on request."""

    target: str
    parent: str


@dataclass(frozen=True)
class WriterOf:
    """The run that wrote a message group (its `wrote` column holds the group's id), else the
    run the group triggered (its `triggered` column does)."""

    target: str = "Run"
    wrote: str = "message_group_id"
    triggered: str = "trigger_message_group_id"


Relation = ToOne | ToMany | Paged | WriterOf


@dataclass(frozen=True)
class Composite:
    """A value made of some columns: `make` takes their values, in order, and returns the
    value's `fields` in order, or None when the value is null."""

    columns: tuple[str, ...]
    fields: tuple[str, ...]
    make: Callable[..., tuple[Any, ...] | None]


@dataclass(frozen=True)
class Object:
    """One object of the graph: its table's row class, the kind of its ids, its relations and
    composite values by name, and the columns REST shows after the spec's keys, in order."""

    name: str
    row: type[SQLModel]
    kind: Kind | None  # None: not a node (a run's event, numbered in its run)
    relations: dict[str, Relation] = field(default_factory=dict)
    composites: dict[str, Composite] = field(default_factory=dict)
    shown: tuple[str, ...] = ()

    @property
    def table(self) -> Table:
        table: Table = self.row.__table__  # type: ignore[attr-defined]
        return table


def cost(amount: float | None, unit: str | None) -> tuple[float, str] | None:
    """What a run cost: null until it has both an amount and a unit."""
    return None if amount is None or unit is None else (amount, unit)


def message_error(code: str | None, message: str | None) -> tuple[str, str] | None:
    """Why a message failed: null without an error code; the message defaults to ""."""
    return None if code is None else (code, message or "")


_OBJECTS = (
    Object(
        "Run",
        tables.RunRow,
        Kind.RUN,
        relations={
            "agent": ToOne("Agent", "agent_id"),
            "thread": ToOne("Thread", "thread_id"),
            "message_group": ToOne("MessageGroup", "message_group_id"),
            "trigger_message_group": ToOne("MessageGroup", "trigger_message_group_id"),
            "errors": ToMany("RunError", "run_id", ("created_at", "id")),
            "attached_items": ToMany(
                "AttachedItem", "run_id", ("run_id", "created_at", "id"), read_with=("actor",)
            ),
        },
        composites={"cost": Composite(("cost_amount", "cost_unit"), ("amount", "unit"), cost)},
        shown=("thread_id", "language", "country", "timezone", "metadata", "raw_inputs"),
    ),
    Object(
        "Agent",
        tables.AgentRow,
        Kind.AGENT,
        relations={"runs": Paged("Run", "agent_id")},
    ),
    Object(
        "Thread",
        tables.ThreadRow,
        Kind.THREAD,
        relations={
            "agent": ToOne("Agent", "agent_id"),
            "runs": Paged("Run", "thread_id"),
            "message_groups": Paged("MessageGroup", "thread_id"),
        },
    ),
    Object("Actor", tables.ActorRow, Kind.ACTOR),
    Object("ContentPart", tables.ContentPartRow, Kind.PART),
    Object("Attachment", tables.AttachmentRow, Kind.ATTACHMENT),
    Object(
        "MessageContent",
        tables.MessageContentRow,
        Kind.CONTENT,
        relations={
            "parts": ToMany("ContentPart", "content_id", ("position",)),
            "attachments": ToMany("Attachment", "content_id", ("position",)),
        },
    ),
    Object(
        "Message",
        tables.MessageRow,
        Kind.MESSAGE,
        relations={
            "actor": ToOne("Actor", "actor_id"),
            "content": ToMany("MessageContent", "message_item_id", one=True),
            "message_group": ToOne("MessageGroup", "message_group_id"),
        },
        composites={
            "error": Composite(("error_code", "error_message"), ("code", "message"), message_error)
        },
    ),
    Object(
        "AttachedItem",
        tables.AttachedItemRow,
        Kind.ITEM,
        relations={"actor": ToOne("Actor", "actor_id"), "run": ToOne("Run", "run_id")},
    ),
    Object(
        "MessageGroup",
        tables.MessageGroupRow,
        Kind.MESSAGE_GROUP,
        relations={
            "messages": ToMany(
                "Message",
                "message_group_id",
                ("message_group_id", "position", "id"),
                read_with=("actor", "content"),
            ),
            "attached_items": ToMany(
                "AttachedItem",
                "message_group_id",
                ("message_group_id", "created_at", "id"),
                read_with=("actor",),
            ),
            "run": WriterOf(),
            "parent": ToOne("MessageGroup", "parent_message_group_id"),
            "thread": ToOne("Thread", "thread_id"),
        },
    ),
    Object("RunError", tables.RunErrorRow, Kind.ERROR, relations={"run": ToOne("Run", "run_id")}),
    Object("RunEvent", tables.RunEventRow, None, relations={"run": ToOne("Run", "run_id")}),
)

OBJECTS: dict[str, Object] = {found.name: found for found in _OBJECTS}
NODES: dict[str, Object] = {found.name: found for found in _OBJECTS if found.kind is not None}
BY_KIND: dict[Kind, Object] = {found.kind: found for found in _OBJECTS if found.kind is not None}


def _named(owner: Table, link: Relation) -> list[tuple[Table, str]]:
    """The columns a relation names, each with its table."""
    target = OBJECTS[link.target].table
    if isinstance(link, ToOne):
        return [(owner, link.column)]
    if isinstance(link, ToMany):
        return [(target, link.parent), *((target, name) for name in link.order)]
    if isinstance(link, Paged):
        return [(target, link.parent)]
    return [(target, link.wrote), (target, link.triggered)]


def _check() -> None:
    """Every relation names a declared object; the columns relations and composites name are
    also their rows' attributes (the resolvers read them as such); the shown columns exist: a
    typo fails at import."""
    for found in _OBJECTS:
        named = [pair for link in found.relations.values() for pair in _named(found.table, link)]
        named += [(found.table, c) for made in found.composites.values() for c in made.columns]
        for table, column in named:
            if column not in table.c or not hasattr(OBJECTS_BY_TABLE[table].row, column):
                raise LookupError(f"{found.name}: {table.name} has no attribute {column}")
        for column in found.shown:
            if column not in found.table.c:
                raise LookupError(f"{found.name}: {found.table.name} has no column {column}")


OBJECTS_BY_TABLE: dict[Table, Object] = {found.table: found for found in _OBJECTS}
_check()


def read_with(relation: ToMany) -> list[With]:
    """What a statement of `relation`'s children reads beside each (its `read_with`)."""
    child = OBJECTS[relation.target]
    found: list[With] = []
    for name in relation.read_with:
        link = child.relations[name]
        if isinstance(link, ToOne):
            found.append(With(OBJECTS[link.target].row, "id", link.column))
        elif isinstance(link, ToMany) and link.one:
            found.append(With(OBJECTS[link.target].row, link.parent, "id"))
        else:
            raise TypeError(f"{relation.target}.{name}: only a to-one link is read beside")
    return found
