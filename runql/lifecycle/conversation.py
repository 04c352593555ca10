"""What an agent is given (the run's message and its thread's history) and what it gives
back (the reply, or the error), read and written in the run model's tables."""

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from runql.agents.protocol import (
    AgentError,
    AgentReply,
    AgentRequest,
    Attachment,
    Part,
    Turn,
)
from runql.enums import (
    ActorType,
    AttachmentType,
    ContentPartType,
    MessageGroupStatus,
    MessageGroupType,
    RunEventType,
    RunStatus,
)
from runql.ids import Kind, new_id
from runql.lifecycle.runs import message_rows
from runql.lifecycle.transitions import transition
from runql.lifecycle.validation import Content
from runql.storage.events import append_event
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
)
from runql.storage.types import utcnow
from runql.storage.writes import insert_rows

HISTORY_GROUPS = 20


async def _turns(session: AsyncSession, group_ids: Sequence[str]) -> dict[str, list[Turn]]:
    """The messages of the groups, as turns, grouped by group."""
    rows = (
        await session.execute(
            select(MessageRow, ActorRow, MessageContentRow)
            .join(ActorRow, col(ActorRow.id) == col(MessageRow.actor_id))
            .outerjoin(
                MessageContentRow, col(MessageContentRow.message_item_id) == col(MessageRow.id)
            )
            .where(col(MessageRow.message_group_id).in_(group_ids))
            .order_by(col(MessageRow.message_group_id), col(MessageRow.position))
        )
    ).all()
    content_ids = [content.id for _, _, content in rows if content is not None]
    parts: defaultdict[str, list[Part]] = defaultdict(list)
    for part in (
        await session.execute(
            select(ContentPartRow)
            .where(col(ContentPartRow.content_id).in_(content_ids))
            .order_by(col(ContentPartRow.content_id), col(ContentPartRow.position))
        )
    ).scalars():
        parts[part.content_id].append(Part(part.text, ContentPartType(part.type)))
    attachments: defaultdict[str, list[Attachment]] = defaultdict(list)
    for att in (
        await session.execute(
            select(AttachmentRow)
            .where(col(AttachmentRow.content_id).in_(content_ids))
            .order_by(col(AttachmentRow.content_id), col(AttachmentRow.position))
        )
    ).scalars():
        attachments[att.content_id].append(
            Attachment(AttachmentType(att.type), att.file_id, att.url, att.caption)
        )
    turns: defaultdict[str, list[Turn]] = defaultdict(list)
    for message, actor, content in rows:
        key = content.id if content is not None else ""
        turns[message.message_group_id].append(
            Turn(ActorType(actor.type), actor.name, tuple(parts[key]), tuple(attachments[key]))
        )
    return turns


async def agent_request(session: AsyncSession, run: RunRow) -> AgentRequest:
    trigger = await session.get(MessageGroupRow, run.trigger_message_group_id)
    assert trigger is not None
    earlier = (
        (
            await session.execute(
                select(col(MessageGroupRow.id))
                .where(
                    col(MessageGroupRow.thread_id) == run.thread_id,
                    col(MessageGroupRow.created_at) < trigger.created_at,
                )
                .order_by(col(MessageGroupRow.created_at).desc(), col(MessageGroupRow.id).desc())
                .limit(HISTORY_GROUPS)
            )
        )
        .scalars()
        .all()
    )
    group_ids = [*reversed(earlier), trigger.id]
    turns = await _turns(session, group_ids)
    message = turns[trigger.id][0] if turns[trigger.id] else Turn(ActorType.USER, "", ())
    history = tuple(turn for group_id in group_ids[:-1] for turn in turns[group_id])
    return AgentRequest(
        run_id=run.id,
        agent_id=run.agent_id,
        thread_id=run.thread_id,
        message=message,
        history=history,
        language=run.language,
        country=run.country,
        timezone=run.timezone,
        metadata=run.metadata_,
        raw_inputs=run.raw_inputs,
    )


async def _agent_actor(session: AsyncSession, agent_id: str) -> ActorRow:
    """The actor an agent writes as, made on its first reply."""
    agent = await session.get(AgentRow, agent_id)
    assert agent is not None
    if agent.actor_id is not None:
        actor = await session.get(ActorRow, agent.actor_id)
        if actor is not None:
            return actor
    actor = ActorRow(
        id=new_id(Kind.ACTOR),
        org_id=agent.org_id,
        name=agent.name,
        type=ActorType.AGENT.value,
        metadata_={"agent_id": agent.id},
    )
    await insert_rows(session, [actor])
    agent.actor_id = actor.id
    return actor


async def write_reply(session: AsyncSession, run: RunRow, reply: AgentReply, worker: str) -> RunRow:
    """The agent's reply as the run's message group, then SUCCESS: all or nothing."""
    actor = await _agent_actor(session, run.agent_id)
    now = utcnow()
    group = MessageGroupRow(
        id=new_id(Kind.MESSAGE_GROUP),
        org_id=run.org_id,
        thread_id=run.thread_id,
        parent_message_group_id=run.trigger_message_group_id,
        status=MessageGroupStatus.COMPLETED.value,
        type=MessageGroupType.ASSISTANT_MESSAGE.value,
        created_at=now,
    )
    rows: list[SQLModel] = [group]
    for position, reply_message in enumerate(reply.messages):
        content = Content(reply_message.parts, reply_message.attachments)
        rows += message_rows(group, actor, position, content)
    messages = [row for row in rows if isinstance(row, MessageRow)]
    items = [
        AttachedItemRow(
            id=new_id(Kind.ITEM),
            org_id=run.org_id,
            run_id=run.id,
            message_group_id=group.id,
            actor_id=actor.id,
            key=item.key,
            value=item.value,
            created_at=now,
        )
        for item in reply.attached_items
    ]
    await insert_rows(session, [*rows, *items])
    for message in messages:
        await append_event(
            session,
            run.id,
            RunEventType.MESSAGE_ADDED,
            {"message_group_id": group.id, "message_id": message.id},
        )
    for item in items:
        await append_event(session, run.id, RunEventType.ITEM_ATTACHED, {"item_id": item.id})
    cost = reply.cost
    return await transition(
        session,
        run.id,
        RunStatus.SUCCESS,
        held_by=worker,
        message_group_id=group.id,
        cost_amount=cost.amount if cost else None,
        cost_unit=cost.unit if cost else None,
    )


async def write_error(
    session: AsyncSession, run: RunRow, error: AgentError, *, held_by: str | None
) -> RunRow:
    """The failure as a RunError, then ERROR: all or nothing."""
    run_id = run.id
    row = RunErrorRow(
        id=new_id(Kind.ERROR),
        org_id=run.org_id,
        run_id=run_id,
        code=error.code,
        message=error.message,
        metadata_=error.metadata,
    )
    await insert_rows(session, [row])
    await append_event(session, run_id, RunEventType.ERROR_ADDED, {"error_id": row.id})
    return await transition(session, run_id, RunStatus.ERROR, held_by=held_by)
