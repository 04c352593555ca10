"""The tables of the run model. Rows are returned to callers as they are."""

from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint, inspect
from sqlmodel import Field, SQLModel

from runql.storage.types import JSONValue, UTCDateTime, utcnow


def _id(foreign_key: str | None = None, *, nullable: bool = False, index: bool = False) -> Any:
    args: list[Any] = [String(40)]
    if foreign_key:
        args.append(ForeignKey(foreign_key))
    return Field(sa_column=Column(*args, nullable=nullable, index=index))


def _primary_id() -> Any:
    return Field(sa_column=Column(String(40), primary_key=True))


def _time(*, nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


def _json(*, name: str | None = None, nullable: bool = False) -> Any:
    column = (
        Column(name, JSONValue, nullable=nullable) if name else Column(JSONValue, nullable=nullable)
    )
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=dict, sa_column=column)


def _text(length: int | None = None, *, nullable: bool = False) -> Any:
    kind = String(length) if length else Text()
    return Field(default=None if nullable else ..., sa_column=Column(kind, nullable=nullable))


DEFAULT_ORG_ID = "org_00000000000000000000"


class OrganizationRow(SQLModel, table=True):
    """A tenant: every agent, thread and run belongs to one; API keys open one."""

    __tablename__ = "organizations"

    id: str = _primary_id()
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    created_at: datetime = _time()


class ApiKeyRow(SQLModel, table=True):
    """A secret API key, stored only as its SHA-256 hash."""

    __tablename__ = "api_keys"

    id: str = _primary_id()
    org_id: str = _id("organizations.id", index=True)
    name: str = _text(200)
    secret_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    hint: str = _text(32)
    created_at: datetime = _time()
    revoked_at: datetime | None = _time(nullable=True)


class AgentRow(SQLModel, table=True):
    __tablename__ = "agents"
    __table_args__ = (Index("ix_agents_org_created", "org_id", "created_at", "id"),)

    id: str = _primary_id()
    org_id: str = _id("organizations.id")
    name: str = _text(200)
    kind: str = _text(64)
    config: dict[str, Any] = _json()
    actor_id: str | None = _id("actors.id", nullable=True)
    archived_at: datetime | None = _time(nullable=True)
    created_at: datetime = _time()
    updated_at: datetime = _time()


class ThreadRow(SQLModel, table=True):
    __tablename__ = "threads"
    __table_args__ = (
        Index("ix_threads_org_created", "org_id", "created_at", "id"),
        Index("ix_threads_agent_created", "agent_id", "created_at", "id"),
    )

    id: str = _primary_id()
    org_id: str = _id("organizations.id")
    agent_id: str = _id("agents.id")
    metadata_: dict[str, Any] = _json(name="metadata")
    created_at: datetime = _time()
    updated_at: datetime = _time()
    active_run_id: str | None = _text(40, nullable=True)  # the run executing now, if any


class ActorRow(SQLModel, table=True):
    __tablename__ = "actors"

    id: str = _primary_id()
    org_id: str = _id("organizations.id")
    name: str = _text(200)
    type: str = _text(16)
    metadata_: dict[str, Any] = _json(name="metadata")
    created_at: datetime = _time()
    updated_at: datetime = _time()


class MessageGroupRow(SQLModel, table=True):
    __tablename__ = "message_groups"
    __table_args__ = (Index("ix_message_groups_thread_created", "thread_id", "created_at", "id"),)

    id: str = _primary_id()
    org_id: str = _id("organizations.id")
    thread_id: str = _id("threads.id")
    parent_message_group_id: str | None = _id("message_groups.id", nullable=True, index=True)
    status: str = _text(16)
    type: str = _text(32)
    metadata_: dict[str, Any] = _json(name="metadata")
    created_at: datetime = _time()


class MessageRow(SQLModel, table=True):
    __tablename__ = "messages"
    # A group's messages are read in (message_group_id, position, id) order (graph.py): with
    # id in the index, SQLite reads several groups' messages in that order with no sort.
    __table_args__ = (Index("ix_messages_group_position_id", "message_group_id", "position", "id"),)

    id: str = _primary_id()
    org_id: str = _id("organizations.id")
    message_group_id: str = _id("message_groups.id")
    thread_id: str = _id("threads.id", index=True)
    actor_id: str = _id("actors.id", index=True)
    position: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    status: str = _text(16)
    type: str = _text(16)
    error_code: str | None = _text(64, nullable=True)
    error_message: str | None = _text(nullable=True)
    created_at: datetime = _time()


class MessageContentRow(SQLModel, table=True):
    __tablename__ = "message_contents"

    id: str = _primary_id()
    org_id: str = _id("organizations.id")
    message_item_id: str = Field(
        sa_column=Column(String(40), ForeignKey("messages.id"), nullable=False, unique=True)
    )


class ContentPartRow(SQLModel, table=True):
    __tablename__ = "content_parts"
    __table_args__ = (Index("ix_content_parts_content_position", "content_id", "position"),)

    id: str = _primary_id()
    org_id: str = _id("organizations.id")
    content_id: str = _id("message_contents.id")
    position: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    type: str = _text(16)
    text: str = _text()


class AttachmentRow(SQLModel, table=True):
    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_content_position", "content_id", "position"),)

    id: str = _primary_id()
    org_id: str = _id("organizations.id")
    content_id: str = _id("message_contents.id")
    position: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    type: str = _text(16)
    file_id: str | None = _text(40, nullable=True)
    url: str | None = _text(nullable=True)
    caption: str | None = _text(nullable=True)


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_org_created", "org_id", "created_at", "id"),
        Index("ix_runs_org_status_created", "org_id", "status", "created_at", "id"),
        Index("ix_runs_agent_created", "agent_id", "created_at", "id"),
        Index("ix_runs_thread_created", "thread_id", "created_at", "id"),
        Index("ix_runs_started", "started_at"),
        Index("ix_runs_completed", "completed_at"),
        Index("ix_runs_status_lease", "status", "lease_expires_at"),
    )

    id: str = _primary_id()
    org_id: str = _id("organizations.id")
    agent_id: str = _id("agents.id")
    thread_id: str = _id("threads.id")
    trigger_message_group_id: str = _id("message_groups.id", index=True)
    message_group_id: str | None = _id("message_groups.id", nullable=True, index=True)
    status: str = _text(16)
    cost_amount: float | None = Field(default=None)
    cost_unit: str | None = _text(64, nullable=True)
    language: str | None = _text(35, nullable=True)
    country: str | None = _text(2, nullable=True)
    timezone: str | None = _text(64, nullable=True)
    metadata_: dict[str, Any] = _json(name="metadata")
    raw_inputs: Any = _json(nullable=True)
    created_at: datetime = _time()
    started_at: datetime | None = _time(nullable=True)
    completed_at: datetime | None = _time(nullable=True)
    last_event_seq: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    lease_owner: str | None = _text(64, nullable=True)
    lease_expires_at: datetime | None = _time(nullable=True)
    cancel_requested_at: datetime | None = _time(nullable=True)


class IdempotencyKeyRow(SQLModel, table=True):
    """A client's idempotency key and the run it made; kept at least 24 hours."""

    __tablename__ = "idempotency_keys"

    org_id: str = Field(
        sa_column=Column(String(40), ForeignKey("organizations.id"), primary_key=True)
    )
    key: str = Field(sa_column=Column(String(255), primary_key=True))
    request_hash: str = _text(64)
    run_id: str = _text(40)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True)
    )


class RunErrorRow(SQLModel, table=True):
    __tablename__ = "run_errors"
    __table_args__ = (Index("ix_run_errors_run_created", "run_id", "created_at", "id"),)

    id: str = _primary_id()
    org_id: str = _id("organizations.id")
    run_id: str = _id("runs.id")
    code: str = _text(64)
    message: str = _text()
    metadata_: dict[str, Any] = _json(name="metadata")
    created_at: datetime = _time()


class AttachedItemRow(SQLModel, table=True):
    __tablename__ = "attached_items"
    __table_args__ = (
        Index("ix_attached_items_run_created", "run_id", "created_at", "id"),
        Index("ix_attached_items_group_created", "message_group_id", "created_at", "id"),
    )

    id: str = _primary_id()
    org_id: str = _id("organizations.id")
    run_id: str = _id("runs.id")
    message_group_id: str | None = _id("message_groups.id", nullable=True)
    actor_id: str | None = _id("actors.id", nullable=True, index=True)
    key: str = _text(200)
    value: Any = _json(nullable=True)
    created_at: datetime = _time()


class RunEventRow(SQLModel, table=True):
    """The append-only log of everything that happens to a run, numbered per run."""

    __tablename__ = "run_events"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_run_events_run_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = _id("runs.id")
    seq: int = Field(sa_column=Column(Integer, nullable=False))
    type: str = _text(32)
    payload: dict[str, Any] = _json()
    created_at: datetime = _time()


Mapped = TypeVar("Mapped", bound=SQLModel)


def row_of(table: type[Mapped], values: dict[str, Any]) -> Mapped:
    """A table's row object holding `values` (by attribute name; those not given are None),
    made as SQLAlchemy makes the objects of rows it loads: without __init__, whose validation
    costs SQLModel some 0.15 ms a row. The object is transient (in no session)."""
    row: Mapped = table._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    row.__dict__.update(dict.fromkeys(_attributes(table)))
    row.__dict__.update(values)
    return row


@cache
def _attributes(table: type[SQLModel]) -> tuple[str, ...]:
    return tuple(attr.key for attr in inspect(table).column_attrs)
