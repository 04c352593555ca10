"""Creating and cancelling runs: validated first, written in one transaction."""

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import orjson
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from runql import text
from runql.enums import (
    ActorType,
    MessageGroupStatus,
    MessageGroupType,
    MessageStatus,
    MessageType,
    RunEventType,
    RunStatus,
)
from runql.errors import BadUserInput, Conflict, FieldNames, NotFound, own_names
from runql.ids import Kind, new_id, require
from runql.lifecycle import validation
from runql.lifecycle.transitions import transition
from runql.lifecycle.validation import Content
from runql.settings import Settings
from runql.storage.database import Database
from runql.storage.events import append_event
from runql.storage.tables import (
    ActorRow,
    AgentRow,
    AttachmentRow,
    ContentPartRow,
    IdempotencyKeyRow,
    MessageContentRow,
    MessageGroupRow,
    MessageRow,
    RunRow,
    ThreadRow,
)
from runql.storage.types import utcnow
from runql.storage.writes import insert_rows
from runql.text import JsonCaps

Row = TypeVar("Row", bound=SQLModel)

IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_IDEMPOTENCY_KEY = 255
API_ACTOR_NAME = "API user"
DEFAULT_JSON_CAPS = Settings().json_caps


@dataclass(frozen=True)
class RunRequest:
    agent_id: str
    content: Content
    thread_id: str | None = None
    language: str | None = None
    country: str | None = None
    timezone: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    raw_inputs: Any = None
    idempotency_key: str | None = None

    def checked(
        self,
        *,
        max_content_bytes: int,
        json_caps: JsonCaps = DEFAULT_JSON_CAPS,
        names: FieldNames = own_names,
    ) -> "RunRequest":
        """The request with its values in canonical form, or a refusal naming the field at
        fault as `names` says (the caller's API: GraphQL's agentId, REST's agent_id)."""
        self.check_text(names)
        require(self.agent_id, Kind.AGENT, names("agent_id"))
        if self.thread_id is not None:
            require(self.thread_id, Kind.THREAD, names("thread_id"))
        key = self.idempotency_key
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
            raise BadUserInput(
                f"an idempotency key has 1 to {MAX_IDEMPOTENCY_KEY} characters",
                field=names("idempotency_key"),
            )
        validation.check_content(self.content, max_bytes=max_content_bytes, names=names)
        return RunRequest(
            agent_id=self.agent_id,
            content=self.content,
            thread_id=self.thread_id,
            language=validation.check_language(self.language, names("language")),
            country=validation.check_country(self.country, names("country")),
            timezone=validation.check_timezone(self.timezone, names("timezone")),
            metadata=validation.check_metadata(self.metadata, json_caps, names("metadata")),
            raw_inputs=validation.check_raw_inputs(self.raw_inputs, json_caps, names("raw_inputs")),
            idempotency_key=key,
        )

    def check_text(self, names: FieldNames = own_names) -> None:
        """Every text of the request is fit to store (runql.text), before anything else is
        looked at: a refusal's message may quote what was sent."""
        for name in ("agent_id", "thread_id", "language", "country", "timezone", "idempotency_key"):
            text.check_text(getattr(self, name), names(name))
        validation.check_content_text(self.content, names)
        text.check_value(self.metadata, names("metadata"))
        text.check_value(self.raw_inputs, names("raw_inputs"))

    def fingerprint(self) -> str:
        described = asdict(self)
        described.pop("idempotency_key")
        return hashlib.sha256(orjson.dumps(described, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def create_run(
    database: Database,
    org_id: str,
    request: RunRequest,
    *,
    max_content_bytes: int,
    json_caps: JsonCaps = DEFAULT_JSON_CAPS,
    names: FieldNames = own_names,
) -> RunRow:
    """Create the run (and its thread and trigger message) in the organization or, for a
    repeated idempotency key, return the run that key made. Nothing is written when anything
    is refused; a refusal names the field at fault as `names` says."""
    request = request.checked(max_content_bytes=max_content_bytes, json_caps=json_caps, names=names)
    async with database.write() as session:
        reserved = None
        if request.idempotency_key is not None:
            earlier, reserved = await _claim_key(session, org_id, request, names)
            if earlier is not None:
                return earlier
        return await _create(session, org_id, request, reserved or new_id(Kind.RUN), names)


async def _claim_key(
    session: AsyncSession, org_id: str, request: RunRequest, names: FieldNames
) -> tuple[RunRow | None, str | None]:
    """Reserve the key for a new run (its id is returned); or find the run an identical
    request already made."""
    key = request.idempotency_key
    now = utcnow()
    await session.execute(
        delete(IdempotencyKeyRow).where(
            col(IdempotencyKeyRow.org_id) == org_id,
            col(IdempotencyKeyRow.key) == key,
            col(IdempotencyKeyRow.created_at) < now - IDEMPOTENCY_WINDOW,
        )
    )
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    reserve = (
        dialect.insert(IdempotencyKeyRow)
        .values(
            org_id=org_id,
            key=key,
            request_hash=request.fingerprint(),
            run_id=new_id(Kind.RUN),
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["org_id", "key"])
        .returning(col(IdempotencyKeyRow.run_id))
    )
    reserved = (await session.execute(reserve)).scalar_one_or_none()
    if reserved is not None:
        return None, reserved
    existing = await session.get(IdempotencyKeyRow, (org_id, key))
    assert existing is not None
    if existing.request_hash != request.fingerprint():
        raise Conflict(
            "this idempotency key was used with a different request", field=names("idempotency_key")
        )
    return await session.get(RunRow, existing.run_id), None


async def _owned(session: AsyncSession, table: type[Row], row_id: str, org_id: str) -> Row | None:
    """The row, if it belongs to the organization: another's is as good as missing."""
    row = await session.get(table, row_id)
    return row if row is not None and row.org_id == org_id else None  # type: ignore[attr-defined]


async def _agent(session: AsyncSession, org_id: str, agent_id: str, names: FieldNames) -> AgentRow:
    agent = await _owned(session, AgentRow, agent_id, org_id)
    if agent is None:
        raise NotFound(f"there is no agent {agent_id}", field=names("agent_id"))
    if agent.archived_at is not None:
        raise Conflict(
            f"agent {agent_id} is archived and takes no new runs", field=names("agent_id")
        )
    return agent


async def _thread(
    session: AsyncSession, request: RunRequest, agent: AgentRow, names: FieldNames
) -> ThreadRow:
    if request.thread_id is None:
        return ThreadRow(id=new_id(Kind.THREAD), org_id=agent.org_id, agent_id=agent.id)
    thread = await _owned(session, ThreadRow, request.thread_id, agent.org_id)
    if thread is None:
        raise NotFound(f"there is no thread {request.thread_id}", field=names("thread_id"))
    if thread.agent_id != agent.id:
        raise Conflict(f"thread {thread.id} belongs to another agent", field=names("thread_id"))
    return thread


async def _api_actor(session: AsyncSession, org_id: str) -> tuple[ActorRow, bool]:
    found = (
        (
            await session.execute(
                select(ActorRow)
                .where(
                    col(ActorRow.org_id) == org_id,
                    col(ActorRow.type) == ActorType.USER.value,
                    col(ActorRow.name) == API_ACTOR_NAME,
                )
                .limit(1)
            )
        )
        .scalars()
        .first()
    )
    if found is not None:
        return found, False
    return ActorRow(
        id=new_id(Kind.ACTOR),
        org_id=org_id,
        name=API_ACTOR_NAME,
        type=ActorType.USER.value,
        metadata_={"source": "api"},
    ), True


async def _latest_group(session: AsyncSession, thread_id: str) -> str | None:
    latest = select(col(MessageGroupRow.id)).where(col(MessageGroupRow.thread_id) == thread_id)
    latest = latest.order_by(
        col(MessageGroupRow.created_at).desc(), col(MessageGroupRow.id).desc()
    ).limit(1)
    return (await session.execute(latest)).scalar_one_or_none()


def message_rows(
    group: MessageGroupRow,
    actor: ActorRow,
    position: int,
    content: Content,
    type: MessageType = MessageType.CONTENT,
) -> list[SQLModel]:
    """A message of the group, written by the actor, with its content, parts and attachments."""
    org_id = group.org_id
    message = MessageRow(
        id=new_id(Kind.MESSAGE),
        org_id=org_id,
        message_group_id=group.id,
        thread_id=group.thread_id,
        actor_id=actor.id,
        position=position,
        status=MessageStatus.ACTIVE.value,
        type=type.value,
        created_at=group.created_at,
    )
    stored = MessageContentRow(id=new_id(Kind.CONTENT), org_id=org_id, message_item_id=message.id)
    rows: list[SQLModel] = [message, stored]
    rows += [
        ContentPartRow(
            id=new_id(Kind.PART),
            org_id=org_id,
            content_id=stored.id,
            position=index,
            type=part.type.value,
            text=part.text,
        )
        for index, part in enumerate(content.parts)
    ]
    rows += [
        AttachmentRow(
            id=new_id(Kind.ATTACHMENT),
            org_id=org_id,
            content_id=stored.id,
            position=index,
            type=a.type.value,
            file_id=a.file_id,
            url=a.url,
            caption=a.caption,
        )
        for index, a in enumerate(content.attachments)
    ]
    return rows


async def _create(
    session: AsyncSession, org_id: str, request: RunRequest, run_id: str, names: FieldNames
) -> RunRow:
    agent = await _agent(session, org_id, request.agent_id, names)
    thread = await _thread(session, request, agent, names)
    actor, new_actor = await _api_actor(session, org_id)
    now = utcnow()
    parent = None if request.thread_id is None else await _latest_group(session, thread.id)
    trigger = MessageGroupRow(
        id=new_id(Kind.MESSAGE_GROUP),
        org_id=org_id,
        thread_id=thread.id,
        parent_message_group_id=parent,
        status=MessageGroupStatus.COMPLETED.value,
        type=MessageGroupType.USER_MESSAGE.value,
        created_at=now,
    )
    run = RunRow(
        id=run_id,
        org_id=org_id,
        agent_id=agent.id,
        thread_id=thread.id,
        trigger_message_group_id=trigger.id,
        status=RunStatus.PENDING.value,
        language=request.language,
        country=request.country,
        timezone=request.timezone,
        metadata_=request.metadata,
        raw_inputs=request.raw_inputs,
        created_at=now,
    )
    rows: list[SQLModel] = [actor] if new_actor else []
    if request.thread_id is None:
        thread.created_at = thread.updated_at = now
        rows.append(thread)
    else:
        thread.updated_at = now
    rows += [trigger, *message_rows(trigger, actor, 0, request.content), run]
    await insert_rows(session, rows)
    await append_event(
        session, run.id, RunEventType.STATUS_CHANGED, {"status": RunStatus.PENDING.value}
    )
    return run


async def cancel_run(database: Database, org_id: str, run_id: str) -> RunRow:
    """Cancel a PENDING run at once; ask the executor to stop a RUNNING one. Cancelling a
    cancelled run changes nothing; a run that succeeded or failed is a Conflict."""
    require(run_id, Kind.RUN, "id")
    async with database.write() as session:
        run = await _owned(session, RunRow, run_id, org_id)
        if run is None:
            raise NotFound(f"there is no run {run_id}", field="id")
        if run.status == RunStatus.CANCELLED:
            return run
        if run.status == RunStatus.PENDING:
            return await transition(session, run_id, RunStatus.CANCELLED)
        if run.status == RunStatus.RUNNING:
            if run.cancel_requested_at is None:
                run.cancel_requested_at = utcnow()
            return run
        raise Conflict(
            f"run {run_id} is {run.status.upper()}; only PENDING or RUNNING runs can be cancelled",
            field="id",
        )
