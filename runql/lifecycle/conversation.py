"""What an agent is given (the run's message and its thread's history) and what it gives
back (the reply, or the error), read and written in the run model's tables."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, Text, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

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
from runql.lifecycle.transitions import (
    append_held,
    append_held_at_once,
    locked_ids,
    transition,
    transition_many,
)
from runql.storage.database import Database
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
from runql.storage.writes import Then, insert_rows, insert_values

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
    return (await agent_requests(session, [run]))[run.id]


async def agent_requests(session: AsyncSession, runs: Sequence[RunRow]) -> dict[str, AgentRequest]:
    """What each run's agent is given, by run: read for all the runs at once (a few
    statements, whatever their number)."""
    triggers = [run.trigger_message_group_id for run in runs]
    history: defaultdict[str, list[str]] = defaultdict(list)  # trigger -> earlier groups
    for group_id, trigger_id in await session.execute(_HISTORY, {"triggers": triggers}):
        history[trigger_id].append(group_id)
    turns = await _turns(session, [*triggers, *(g for found in history.values() for g in found)])
    return {run.id: _request(run, history[run.trigger_message_group_id], turns) for run in runs}


def _request(run: RunRow, earlier: list[str], turns: dict[str, list[Turn]]) -> AgentRequest:
    trigger = turns.get(run.trigger_message_group_id)
    message = trigger[0] if trigger else Turn(ActorType.USER, "", ())
    return AgentRequest(
        run_id=run.id,
        agent_id=run.agent_id,
        thread_id=run.thread_id,
        message=message,
        history=tuple(turn for group_id in earlier for turn in turns.get(group_id, ())),
        language=run.language,
        country=run.country,
        timezone=run.timezone,
        metadata=run.metadata_,
        raw_inputs=run.raw_inputs,
    )


def _history() -> Any:
    """The HISTORY_GROUPS message groups of a trigger's thread before it, oldest first, for
    each of the `triggers` (by id)."""
    group = MessageGroupRow
    trigger: Any = aliased(MessageGroupRow)
    rank = func.row_number().over(
        partition_by=trigger.id,
        order_by=(col(group.created_at).desc(), col(group.id).desc()),
    )
    ranked = (
        select(col(group.id).label("id"), trigger.id.label("trigger"), rank.label("rank"))
        .join(
            trigger,
            and_(
                trigger.thread_id == col(group.thread_id),
                trigger.id.in_(bindparam("triggers", expanding=True)),
            ),
        )
        .where(col(group.created_at) < trigger.created_at)
        .subquery()
    )
    return (
        select(ranked.c.id, ranked.c.trigger)
        .where(ranked.c.rank <= HISTORY_GROUPS)
        .order_by(ranked.c.trigger, ranked.c.rank.desc())
    )


_HISTORY = _history()


_MADE_ACTORS = "runql.made_actors"  # session.info: the agents' actors this transaction made


async def agent_actor(
    session: AsyncSession, agent_id: str, known: dict[str, str] | None = None
) -> str:
    """The id of the actor an agent writes as, made on its first reply. `known` remembers
    actors made by committed transactions, so each agent's is looked up once; one this
    transaction made (read back by a later run of its batch) is not remembered, since the
    transaction may yet roll back. Runs of a new agent that end together make one actor: the
    agent takes the first made, and a transaction that finds another already taken drops its
    own."""
    if known is not None and agent_id in known:
        return known[agent_id]
    made: set[str] = session.info.setdefault(_MADE_ACTORS, set())
    agent = (
        await session.execute(
            select(col(AgentRow.org_id), col(AgentRow.name), col(AgentRow.actor_id)).where(
                col(AgentRow.id) == agent_id
            )
        )
    ).one()
    if agent.actor_id is not None:
        if known is not None and agent.actor_id not in made:
            known[agent_id] = agent.actor_id
        return str(agent.actor_id)
    actor_id = new_id(Kind.ACTOR)
    actor = ActorRow(
        id=actor_id,
        org_id=agent.org_id,
        name=agent.name,
        type=ActorType.AGENT.value,
        metadata_={"agent_id": agent_id},
    )
    await insert_rows(session, [actor])
    taken = await session.execute(
        update(AgentRow)
        .where(col(AgentRow.id) == agent_id, col(AgentRow.actor_id).is_(None))
        .values(actor_id=actor_id)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        made.add(actor_id)
        return actor_id
    await session.execute(delete(ActorRow).where(col(ActorRow.id) == actor_id))
    return await agent_actor(session, agent_id, known)


Outcome = (
    AgentReply | AgentError | None
)  # what an agent that answers once ends with (None: cancelled)


@dataclass(frozen=True, slots=True)
class _Written:
    """A reply's rows as inserted: its message group, messages and items."""

    group_id: str
    message_ids: list[str]
    item_ids: list[str]

    def events(self) -> list[tuple[RunEventType, dict[str, Any]]]:
        """What the run appends for them: a message added for each message, then an item
        attached for each item."""
        added = [
            (RunEventType.MESSAGE_ADDED, {"message_group_id": self.group_id, "message_id": m})
            for m in self.message_ids
        ]
        return added + [(RunEventType.ITEM_ATTACHED, {"item_id": i}) for i in self.item_ids]


async def write_outcomes(
    session: AsyncSession,
    ended: Sequence[tuple[RunRow, Outcome]],
    worker: str,
    actors: dict[str, str] | None = None,
) -> list[RunRow]:
    """The outcomes of runs `worker` holds, in the session's transaction: the replies' rows
    inserted for all runs at once, one statement a table, then each run's events and its end
    (SUCCESS with its reply, ERROR with a RunError, CANCELLED). Raises Conflict, having
    written nothing, when a run is no longer the worker's; the caller's transaction then
    rolls back. `actors` remembers agents' actors between calls (agent_actor)."""
    if not ended:
        return []
    await _held(session, sorted(run.id for run, _ in ended), worker)
    replies = [(run, out) for run, out in ended if isinstance(out, AgentReply)]
    written = await _insert_replies(session, replies, actors)
    succeeded = await transition_many(
        session,
        [run.id for run, _ in replies],
        RunStatus.SUCCESS,
        held_by=worker,
        each={run.id: _ending(reply, written[run.id]) for run, reply in replies},
        before={run.id: written[run.id].events() for run, _ in replies},
    )
    stored = dict(zip([run.id for run, _ in replies], succeeded, strict=True))
    for run, outcome in ended:
        if outcome is None:
            stored[run.id] = await transition(session, run.id, RunStatus.CANCELLED, held_by=worker)
        elif isinstance(outcome, AgentError):
            stored[run.id] = await write_error(session, run, outcome, held_by=worker)
    return [stored[run.id] for run, _ in ended]


def _ending(reply: AgentReply, written: "_Written") -> dict[str, Any]:
    cost = reply.cost
    return {
        "message_group_id": written.group_id,
        "cost_amount": cost.amount if cost else None,
        "cost_unit": cost.unit if cost else None,
    }


async def _held(session: AsyncSession, run_ids: list[str], worker: str) -> None:
    """Conflict unless the worker holds every run (RUNNING, leased to it); on PostgreSQL the
    runs are locked, in id order (transitions.lock_in_id_order's), until the commit."""
    found = await locked_ids(
        session,
        run_ids,
        col(RunRow.lease_owner) == worker,
        col(RunRow.status) == RunStatus.RUNNING.value,
    )
    lost = [run_id for run_id in run_ids if run_id not in found]
    if lost:
        raise Conflict(f"run {lost[0]} is no longer leased to {worker}", field="id")


async def _insert_replies(
    session: AsyncSession,
    replies: Sequence[tuple[RunRow, AgentReply]],
    actors: dict[str, str] | None,
) -> dict[str, _Written]:
    """The replies' message groups, messages (contents, parts, attachments) and items, one
    insert a table for all of them."""
    rows: defaultdict[Table, list[dict[str, Any]]] = defaultdict(list)
    written: dict[str, _Written] = {}
    for run, reply in replies:
        actor_id = await agent_actor(session, run.agent_id, actors)
        written[run.id] = _reply_values(rows, run, reply, actor_id, utcnow())
    await insert_values(session, rows)
    return written


def _reply_values(
    rows: defaultdict[Table, list[dict[str, Any]]],
    run: RunRow,
    reply: AgentReply,
    actor_id: str,
    now: datetime,
) -> _Written:
    group_id = new_id(Kind.MESSAGE_GROUP)
    org_id = run.org_id
    rows[_GROUPS].append(
        {
            "id": group_id,
            "org_id": org_id,
            "thread_id": run.thread_id,
            "parent_message_group_id": run.trigger_message_group_id,
            "status": MessageGroupStatus.COMPLETED.value,
            "type": MessageGroupType.ASSISTANT_MESSAGE.value,
            "metadata": {},
            "created_at": now,
        }
    )
    message_ids = []
    for position, message in enumerate(reply.messages):
        message_id, content_id = new_id(Kind.MESSAGE), new_id(Kind.CONTENT)
        message_ids.append(message_id)
        kind = MessageType(message.type).value
        rows[_MESSAGES].append(
            _message_values(run, group_id, actor_id, message_id, position, kind, now)
        )
        rows[_CONTENTS].append(_content_values(org_id, content_id, message_id))
        rows[_PARTS] += [
            _part_values(org_id, content_id, new_id(Kind.PART), index, part.type, part.text)
            for index, part in enumerate(message.parts)
        ]
        rows[_ATTACHMENTS] += [
            _attachment_values(org_id, content_id, new_id(Kind.ATTACHMENT), index, attachment)
            for index, attachment in enumerate(message.attachments)
        ]
    item_ids = []
    for item in reply.attached_items:
        item_ids.append(new_id(Kind.ITEM))
        rows[_ITEMS].append(
            _item_values(run, group_id, actor_id, Item(item_ids[-1], item.key, item.value), now)
        )
    return _Written(group_id, message_ids, item_ids)


_GROUPS: Table = MessageGroupRow.__table__  # type: ignore[attr-defined]
_MESSAGES: Table = MessageRow.__table__  # type: ignore[attr-defined]
_CONTENTS: Table = MessageContentRow.__table__  # type: ignore[attr-defined]
_PARTS: Table = ContentPartRow.__table__  # type: ignore[attr-defined]
_ATTACHMENTS: Table = AttachmentRow.__table__  # type: ignore[attr-defined]
_ITEMS: Table = AttachedItemRow.__table__  # type: ignore[attr-defined]


# A reply's new rows, as column values by column name: each table's rows have every column, so
# that one insert takes them all (the rows of whole replies and of streamed ones alike).


def _message_values(
    run: RunRow,
    group_id: str,
    actor_id: str,
    message_id: str,
    position: int,
    type: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": message_id,
        "org_id": run.org_id,
        "message_group_id": group_id,
        "thread_id": run.thread_id,
        "actor_id": actor_id,
        "position": position,
        "status": MessageStatus.ACTIVE.value,
        "type": type,
        "error_code": None,
        "error_message": None,
        "created_at": now,
    }


def _content_values(org_id: str, content_id: str, message_id: str) -> dict[str, Any]:
    return {"id": content_id, "org_id": org_id, "message_item_id": message_id}


def _part_values(
    org_id: str, content_id: str, part_id: str, position: int, type: ContentPartType, text: str
) -> dict[str, Any]:
    return {
        "id": part_id,
        "org_id": org_id,
        "content_id": content_id,
        "position": position,
        "type": type.value,
        "text": text,
    }


def _attachment_values(
    org_id: str, content_id: str, attachment_id: str, position: int, attachment: Attachment
) -> dict[str, Any]:
    return {
        "id": attachment_id,
        "org_id": org_id,
        "content_id": content_id,
        "position": position,
        "type": AttachmentType(attachment.type).value,
        "file_id": attachment.file_id,
        "url": attachment.url,
        "caption": attachment.caption,
    }


def _item_values(
    run: RunRow, group_id: str, actor_id: str | None, item: Item, now: datetime
) -> dict[str, Any]:
    return {
        "id": item.item_id,
        "org_id": run.org_id,
        "run_id": run.id,
        "message_group_id": group_id,
        "actor_id": actor_id,
        "key": item.key,
        "value": item.value,
        "created_at": now,
    }


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


@dataclass(frozen=True, slots=True)
class ReplySteps:
    """Steps of a streamed reply to write (a flush, or the last ones of a reply that ends in
    SUCCESS): its run, its draft and the steps."""

    run: RunRow
    draft: Draft
    steps: list[Step]


async def write_steps(
    session: AsyncSession,
    run: RunRow,
    draft: Draft,
    steps: list[Step],
    worker: str,
    actors: dict[str, str] | None = None,
) -> None:
    """Steps of a streamed reply, in the session's transaction (one flush): write_flushes
    for one run."""
    await write_flushes(session, [ReplySteps(run, draft, steps)], worker, actors)


async def write_flushes(
    session: AsyncSession,
    flushes: Sequence[ReplySteps],
    worker: str,
    actors: dict[str, str] | None = None,
) -> None:
    """Flushes of streamed replies (one a run) in the session's transaction, in a few
    statements whatever their number: a reply's first flush stores its message group,
    IN_PROGRESS, as its run's message group, so that reads show the reply while it grows;
    then the runs' events are numbered and logged at once (append_held), the steps' new rows
    inserted one statement a table and the text of every message written to appended in one
    statement (on SQLite, in the inserts' trip to the driver's thread). Raises Conflict when
    a run is no longer this worker's; the transaction is then to roll back."""
    if not flushes:
        return
    groups = []
    for flush in flushes:
        if not flush.draft.group_stored:
            flush.draft.actor_id = await agent_actor(session, flush.run.agent_id, actors)
            groups.append(
                _group_values(
                    flush.run, flush.draft.group_id, utcnow(), MessageGroupStatus.IN_PROGRESS
                )
            )
    if groups:
        await session.execute(insert(_GROUPS), groups)
    events, rows, appended = _flushed(flushes)
    # A run's message group is set by its reply's first flush; a batch of later flushes only
    # would set every run's to what it is already, by a CASE of one branch a run, which
    # SQLAlchemy builds anew for each batch (a fifth of the process's CPU at 100 streams).
    each = {f.run.id: {"message_group_id": f.draft.group_id} for f in flushes} if groups else {}
    texts = _appending(appended)
    await append_held(session, events, held_by=worker, each=each, values=rows, then=texts)
    stored(flushes)


async def write_flushes_at_once(
    database: Database,
    flushes: Sequence[ReplySteps],
    worker: str,
    actors: dict[str, str],
) -> bool:
    """write_flushes on PostgreSQL in one statement, a transaction of its own
    (transitions.append_held_at_once): the same rows, events and texts, a first flush's
    message group inserted with them and set as its run's. False, having written nothing,
    where it does not serve: on SQLite, or for a first flush whose agent's actor is not in
    `actors` (write_flushes looks it up, or makes it). Raises Conflict, having written
    nothing, when a run is no longer this worker's."""
    if database.is_sqlite or not flushes:
        return False
    firsts = [f for f in flushes if not f.draft.group_stored]
    if any(f.run.agent_id not in actors for f in firsts):
        return False
    for flush in firsts:
        flush.draft.actor_id = actors[flush.run.agent_id]
    events, rows, appended = _flushed(flushes)
    rows[_GROUPS] = [
        _group_values(f.run, f.draft.group_id, utcnow(), MessageGroupStatus.IN_PROGRESS)
        for f in firsts
    ]
    await append_held_at_once(
        database,
        events,
        held_by=worker,
        orgs={f.run.id: f.run.org_id for f in flushes},
        groups={f.run.id: f.draft.group_id for f in firsts},
        values=rows,
        texts=_later_texts(rows[_PARTS], appended),
    )
    stored(flushes)
    return True


Flushed = tuple[
    dict[str, list[tuple[RunEventType, dict[str, Any]]]],
    defaultdict[Table, list[dict[str, Any]]],
    list[Appended],
]


def _flushed(flushes: Sequence[ReplySteps]) -> Flushed:
    """The flushes' events by run, the steps' new rows by table, and their deltas."""
    rows: defaultdict[Table, list[dict[str, Any]]] = defaultdict(list)
    events = {
        f.run.id: [_step_values(rows, f.run, f.draft, step) for step in f.steps] for f in flushes
    }
    return events, rows, [s for f in flushes for s in f.steps if isinstance(s, Appended)]


def _later_texts(
    parts: list[dict[str, Any]], appended: Sequence[Appended]
) -> list[tuple[str, str]]:
    """The deltas to append to stored parts (part id, more); those of a part inserted with
    them are put in its inserted text, as one statement's update does not see its own
    inserts."""
    new = {part["id"]: part for part in parts}
    later = []
    for text in _texts(appended):
        part = new.get(text["part_id"])
        if part is None:
            later.append((text["part_id"], text["more"]))
        else:
            part["text"] += text["more"]
    return later


def stored(flushes: Sequence[ReplySteps]) -> None:
    """The flushes' drafts, once their transaction has committed: their groups are stored."""
    for flush in flushes:
        flush.draft.group_stored = True


_APPEND_TEXT = (
    update(_PARTS)
    .where(_PARTS.c.id == bindparam("part_id"))
    .values(text=_PARTS.c.text + bindparam("more", type_=Text))
)


def _texts(appended: Sequence[Appended]) -> list[dict[str, Any]]:
    """_APPEND_TEXT's parameters for the deltas: one a part, its deltas joined in order."""
    texts: dict[str, list[str]] = {}
    for step in appended:
        texts.setdefault(step.part_id, []).append(step.text)
    return [{"part_id": part, "more": "".join(more)} for part, more in texts.items()]


def _appending(appended: Sequence[Appended]) -> Then:
    """Deltas at the end of their parts' text, in one statement (executemany) for all, to run
    after the inserts (insert_values' `then`): a stored text stays the concatenation of its
    deltas, in order."""
    return [(_APPEND_TEXT, _texts(appended))] if appended else []


def _opened_rows(
    rows: defaultdict[Table, list[dict[str, Any]]],
    run: RunRow,
    group_id: str,
    actor_id: str,
    step: Opened,
) -> None:
    """A new message's rows (its content, parts and attachments), added to `rows`."""
    org_id, content_id = run.org_id, step.content_id
    rows[_MESSAGES].append(
        _message_values(
            run, group_id, actor_id, step.message_id, step.position, step.type.value, utcnow()
        )
    )
    rows[_CONTENTS].append(_content_values(org_id, content_id, step.message_id))
    rows[_PARTS] += [
        _part_values(org_id, content_id, part.id, position, part.type, part.text)
        for position, part in enumerate(step.parts)
    ]
    rows[_ATTACHMENTS] += [
        _attachment_values(org_id, content_id, id, position, attachment)
        for position, (id, attachment) in enumerate(step.attachments)
    ]


async def finish_succeeded(
    session: AsyncSession,
    finished: Sequence[ReplySteps],
    worker: str,
    actors: dict[str, str] | None = None,
) -> list[RunRow]:
    """finish_streamed for many replies that end in SUCCESS, in the session's transaction:
    the same rows and events, but the new rows of all of them inserted one statement a table
    and all runs moved at once (a group stored only now is stored COMPLETED). Raises Conflict,
    having written nothing, when a run is no longer the worker's."""
    if not finished:
        return []
    await _held(session, sorted(f.run.id for f in finished), worker)
    rows: defaultdict[Table, list[dict[str, Any]]] = defaultdict(list)
    appended: list[Appended] = []
    before: dict[str, list[tuple[RunEventType, dict[str, Any]]]] = {}
    each: dict[str, dict[str, Any]] = {}
    for done in finished:
        run, draft = done.run, done.draft
        if not draft.group_stored:
            draft.actor_id = await agent_actor(session, run.agent_id, actors)
            rows[_GROUPS].append(
                _group_values(run, draft.group_id, utcnow(), MessageGroupStatus.COMPLETED)
            )
        before[run.id] = [_step_values(rows, run, draft, step) for step in done.steps]
        appended += [step for step in done.steps if isinstance(step, Appended)]
        cost = draft.cost
        each[run.id] = {
            "message_group_id": draft.group_id,
            "cost_amount": cost.amount if cost else None,
            "cost_unit": cost.unit if cost else None,
        }
    await insert_values(session, rows, then=_appending(appended))
    stored = [f.draft.group_id for f in finished if f.draft.group_stored]
    if stored:
        await session.execute(
            update(MessageGroupRow)
            .where(
                col(MessageGroupRow.id).in_(stored),
                col(MessageGroupRow.status) == MessageGroupStatus.IN_PROGRESS.value,
            )
            .values(status=MessageGroupStatus.COMPLETED.value)
            .execution_options(synchronize_session=False)
        )
    moved = await transition_many(
        session,
        [f.run.id for f in finished],
        RunStatus.SUCCESS,
        held_by=worker,
        each=each,
        before=before,
    )
    for done in finished:
        done.draft.group_stored = True
    return moved


def _group_values(
    run: RunRow, group_id: str, now: datetime, status: MessageGroupStatus
) -> dict[str, Any]:
    return {
        "id": group_id,
        "org_id": run.org_id,
        "thread_id": run.thread_id,
        "parent_message_group_id": run.trigger_message_group_id,
        "status": status.value,
        "type": MessageGroupType.ASSISTANT_MESSAGE.value,
        "metadata": {},
        "created_at": now,
    }


def _step_values(
    rows: defaultdict[Table, list[dict[str, Any]]], run: RunRow, draft: Draft, step: Step
) -> tuple[RunEventType, dict[str, Any]]:
    """A step's new rows (added to `rows`) and its event."""
    ids: dict[str, Any] = {"message_group_id": draft.group_id}
    if isinstance(step, Opened):
        assert draft.actor_id is not None
        _opened_rows(rows, run, draft.group_id, draft.actor_id, step)
        return RunEventType.MESSAGE_ADDED, {**ids, "message_id": step.message_id}
    if isinstance(step, Appended):
        text = step.text
        payload = {**ids, "message_id": step.message_id, "offset": step.offset, "text": text}
        return RunEventType.MESSAGE_DELTA, payload
    if isinstance(step, Attached):
        rows[_ATTACHMENTS].append(
            _attachment_values(
                run.org_id, step.content_id, step.attachment_id, step.position, step.attachment
            )
        )
        payload = {
            **ids,
            "message_id": step.message_id,
            "offset": step.offset,
            "text": "",
            "attachment_id": step.attachment_id,
        }
        return RunEventType.MESSAGE_DELTA, payload
    rows[_ITEMS].append(_item_values(run, draft.group_id, draft.actor_id, step, utcnow()))
    return RunEventType.ITEM_ATTACHED, {"item_id": step.item_id}


async def finish_streamed(
    session: AsyncSession,
    run: RunRow,
    draft: Draft,
    worker: str,
    ending: AgentError | RunStatus,
    steps: list[Step] | None = None,
    actors: dict[str, str] | None = None,
) -> RunRow:
    """The last flush of a streamed reply (`steps`, else those pending in the draft) and the
    run's end, in one transaction: SUCCESS (its group COMPLETED, stored now if nothing was
    streamed), CANCELLED (what was streamed kept, the group CANCELLED) or, for an
    AgentError, ERROR (the group FAILED)."""
    if steps is None:
        steps = draft.take()
    if steps or ending is RunStatus.SUCCESS:
        await write_steps(session, run, draft, steps, worker, actors)
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
