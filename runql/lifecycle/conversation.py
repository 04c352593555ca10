"""What an agent is given (the run's message and its thread's history) and what it gives
back (the reply, or the error), read and written in the run model's tables."""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
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
    MessageStatus,
    MessageType,
    RunEventType,
    RunStatus,
)
from runql.errors import Conflict
from runql.ids import Kind, new_id
from runql.lifecycle.draft import Appended, Attached, Draft, Item, Opened, Step
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
        rows += message_rows(group, actor, position, content, MessageType(reply_message.type))
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
    await settle_reply(session, run_id, MessageGroupStatus.FAILED)
    return await transition(session, run_id, RunStatus.ERROR, held_by=held_by)


async def settle_reply(session: AsyncSession, run_id: str, status: MessageGroupStatus) -> None:
    """The run's reply, if one is still being streamed (IN_PROGRESS), ends as `status`: what
    was streamed stays, marked COMPLETED, FAILED or CANCELLED with its run."""
    reply = select(col(RunRow.message_group_id)).where(col(RunRow.id) == run_id)
    await session.execute(
        update(MessageGroupRow)
        .where(
            col(MessageGroupRow.id) == reply.scalar_subquery(),
            col(MessageGroupRow.status) == MessageGroupStatus.IN_PROGRESS.value,
        )
        .values(status=status.value)
        .execution_options(synchronize_session=False)
    )


# -- a streamed reply, written as it goes (runql.lifecycle.draft says what each step is) -------


async def write_steps(
    session: AsyncSession, run: RunRow, draft: Draft, steps: list[Step], worker: str
) -> None:
    """Steps of a streamed reply, in the session's transaction (one flush). The first flush
    stores the reply's message group, IN_PROGRESS, as the run's message group, so that reads
    show the reply while it grows. Raises Conflict when the run is no longer this worker's."""
    if not draft.group_stored:
        await _store_group(session, run, draft, worker)
    for step in steps:
        await _write_step(session, run, draft, step, worker)


async def _store_group(session: AsyncSession, run: RunRow, draft: Draft, worker: str) -> None:
    actor = await _agent_actor(session, run.agent_id)
    group = MessageGroupRow(
        id=draft.group_id,
        org_id=run.org_id,
        thread_id=run.thread_id,
        parent_message_group_id=run.trigger_message_group_id,
        status=MessageGroupStatus.IN_PROGRESS.value,
        type=MessageGroupType.ASSISTANT_MESSAGE.value,
        created_at=utcnow(),
    )
    await insert_rows(session, [group])
    linked = await session.execute(
        update(RunRow)
        .where(col(RunRow.id) == run.id, col(RunRow.lease_owner) == worker)
        .values(message_group_id=group.id)
        .execution_options(synchronize_session=False)
    )
    if linked.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"run {run.id} is no longer leased to {worker}", field="id")
    draft.group_stored, draft.actor_id = True, actor.id


async def _write_step(
    session: AsyncSession, run: RunRow, draft: Draft, step: Step, worker: str
) -> None:
    assert draft.actor_id is not None
    ids: dict[str, Any] = {"message_group_id": draft.group_id}
    if isinstance(step, Opened):
        await insert_rows(session, _opened_rows(run, draft.group_id, draft.actor_id, step))
        payload = {**ids, "message_id": step.message_id}
        await append_event(session, run.id, RunEventType.MESSAGE_ADDED, payload, held_by=worker)
    elif isinstance(step, Appended):
        text = step.text
        payload = {**ids, "message_id": step.message_id, "offset": step.offset, "text": text}
        await append_event(session, run.id, RunEventType.MESSAGE_DELTA, payload, held_by=worker)
        await session.execute(
            update(ContentPartRow)
            .where(col(ContentPartRow.id) == step.part_id)
            .values(text=col(ContentPartRow.text) + text)
            .execution_options(synchronize_session=False)
        )
    elif isinstance(step, Attached):
        await insert_rows(session, [_attachment_row(run, step)])
        payload = {
            **ids,
            "message_id": step.message_id,
            "offset": step.offset,
            "text": "",
            "attachment_id": step.attachment_id,
        }
        await append_event(session, run.id, RunEventType.MESSAGE_DELTA, payload, held_by=worker)
    else:
        await insert_rows(session, [_item_row(run, draft, step)])
        payload = {"item_id": step.item_id}
        await append_event(session, run.id, RunEventType.ITEM_ATTACHED, payload, held_by=worker)


def _opened_rows(run: RunRow, group_id: str, actor_id: str, step: Opened) -> list[SQLModel]:
    rows: list[SQLModel] = [
        MessageRow(
            id=step.message_id,
            org_id=run.org_id,
            message_group_id=group_id,
            thread_id=run.thread_id,
            actor_id=actor_id,
            position=step.position,
            status=MessageStatus.ACTIVE.value,
            type=step.type.value,
            created_at=utcnow(),
        ),
        MessageContentRow(id=step.content_id, org_id=run.org_id, message_item_id=step.message_id),
    ]
    rows += [
        ContentPartRow(
            id=part.id,
            org_id=run.org_id,
            content_id=step.content_id,
            position=position,
            type=part.type.value,
            text=part.text,
        )
        for position, part in enumerate(step.parts)
    ]
    rows += [
        _attachment_row(run, Attached(step.message_id, step.content_id, id, position, 0, a))
        for position, (id, a) in enumerate(step.attachments)
    ]
    return rows


def _attachment_row(run: RunRow, step: Attached) -> AttachmentRow:
    attachment = step.attachment
    return AttachmentRow(
        id=step.attachment_id,
        org_id=run.org_id,
        content_id=step.content_id,
        position=step.position,
        type=AttachmentType(attachment.type).value,
        file_id=attachment.file_id,
        url=attachment.url,
        caption=attachment.caption,
    )


def _item_row(run: RunRow, draft: Draft, step: Item) -> AttachedItemRow:
    return AttachedItemRow(
        id=step.item_id,
        org_id=run.org_id,
        run_id=run.id,
        message_group_id=draft.group_id,
        actor_id=draft.actor_id,
        key=step.key,
        value=step.value,
        created_at=utcnow(),
    )


async def finish_streamed(
    session: AsyncSession,
    run: RunRow,
    draft: Draft,
    worker: str,
    ending: AgentError | RunStatus,
) -> RunRow:
    """The last flush of a streamed reply and the run's end, in one transaction: SUCCESS (its
    group COMPLETED, stored now if nothing was streamed), CANCELLED (what was streamed kept,
    the group CANCELLED) or, for an AgentError, ERROR (the group FAILED)."""
    steps = draft.take()
    if steps or ending is RunStatus.SUCCESS:
        await write_steps(session, run, draft, steps, worker)
    if isinstance(ending, AgentError):
        return await write_error(session, run, ending, held_by=worker)
    if ending is RunStatus.CANCELLED:
        await settle_reply(session, run.id, MessageGroupStatus.CANCELLED)
        return await transition(session, run.id, RunStatus.CANCELLED, held_by=worker)
    await settle_reply(session, run.id, MessageGroupStatus.COMPLETED)
    cost = draft.cost
    return await transition(
        session,
        run.id,
        RunStatus.SUCCESS,
        held_by=worker,
        message_group_id=draft.group_id,
        cost_amount=cost.amount if cost else None,
        cost_unit=cost.unit if cost else None,
    )
