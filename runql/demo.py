"""Demo data that looks real: agents, users, threads, and runs in every status.

Unfinished runs are the newest, a PENDING one last. RUNNING runs are held by a lease of a
demo worker that expires `DEMO_LEASE` after loading, so the executor's recovery ends them as
it would any run whose worker died; PENDING runs belong to the Echo agent, so a server with
workers runs them to SUCCESS.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import SQLModel
from tqdm import tqdm

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
from runql.ids import Kind, new_id
from runql.storage.database import Database
from runql.storage.tables import (
    DEFAULT_ORG_ID,
    ActorRow,
    AgentRow,
    AttachedItemRow,
    AttachmentRow,
    ContentPartRow,
    MessageContentRow,
    MessageGroupRow,
    MessageRow,
    RunErrorRow,
    RunEventRow,
    RunRow,
    ThreadRow,
)
from runql.storage.writes import insert_rows

AGENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("Echo", "echo", {"delay_ms": 500}),
    (
        "Support Assistant",
        "webhook",
        {"url": "http://127.0.0.1:8787/agents/support", "timeout_s": 10},
    ),
    (
        "Research Analyst",
        "webhook",
        {"url": "http://127.0.0.1:8787/agents/research", "timeout_s": 30},
    ),
    ("Code Reviewer", "webhook", {"url": "http://127.0.0.1:8787/agents/review", "timeout_s": 20}),
]
# An echo agent that streams its answer a word at a time, to watch an agent type: it has no
# demo runs (the runs above are drawn from AGENTS alone, so a seed gives the same data).
TYPIST: tuple[str, str, dict[str, Any]] = (
    "Typist",
    "echo",
    {"delay_ms": 300, "stream_delay_ms": 150},
)

USERS = [
    ("Ada Lovelace", "ada@example.com"),
    ("Grace Hopper", "grace@example.com"),
    ("Alan Turing", "alan@example.com"),
    ("Katherine Johnson", "katherine@example.com"),
    ("Edsger Dijkstra", "edsger@example.com"),
    ("Barbara Liskov", "barbara@example.com"),
]

QUESTIONS = [
    "Can you summarise yesterday's incident report?",
    "What changed between version 2.3 and 2.4 of the billing service?",
    "Draft a reply to the customer asking about a refund.",
    "Which of our regions had the highest latency last week?",
    "Review the attached pull request for thread-safety problems.",
    "Translate the onboarding guide into French.",
    "Why does the nightly export job keep timing out?",
    "List the open questions from the design review.",
]

ANSWERS = [
    "Here is a summary of the main points.",
    "I looked into it; the short answer is below.",
    "Done. I kept the tone friendly and offered a follow-up call.",
    "The numbers point to one clear cause.",
    "I found two places worth a closer look.",
]

DETAILS = [
    "1. The cache warm-up ran after the traffic shift, not before.\n2. Retries doubled the load.",
    "```python\nwith lock:\n    counter += 1\n```",
    '{"region": "eu-west-1", "p99_ms": 412}',
    "- Refund approved for order 4411\n- Customer notified by email",
]

ERRORS = [
    ("agent_timeout", "The agent did not answer within 30 seconds."),
    ("upstream_unavailable", "The agent's endpoint answered 503 Service Unavailable."),
    ("invalid_reply", "The agent's reply was not valid JSON."),
]

DEMO_WORKER = "demo-worker"
DEMO_LEASE = timedelta(minutes=5)

# Weights of the statuses the demo runs end up in (most runs succeed).
STATUS_WEIGHTS = {
    RunStatus.SUCCESS: 70,
    RunStatus.ERROR: 10,
    RunStatus.CANCELLED: 6,
    RunStatus.RUNNING: 7,
    RunStatus.PENDING: 7,
}


@dataclass
class _Cast:
    agents: list[AgentRow]
    agent_actors: dict[str, ActorRow]
    users: list[ActorRow]

    @property
    def echo(self) -> AgentRow:
        return next(agent for agent in self.agents if agent.kind == "echo")


@dataclass
class _Batch:
    """Rows to insert together, each stamped with the demo's organization."""

    org_id: str
    rows: list[SQLModel] = field(default_factory=list)

    def add(self, *rows: SQLModel) -> None:
        for row in rows:
            if hasattr(row, "org_id"):
                row.org_id = self.org_id
        self.rows.extend(rows)


def _cast(start: datetime) -> _Cast:
    agents = [
        AgentRow(
            id=new_id(Kind.AGENT),
            name=name,
            kind=kind,
            config=config,
            created_at=start,
            updated_at=start,
        )
        for name, kind, config in [*AGENTS, TYPIST]
    ]
    agent_actors = {
        agent.id: ActorRow(
            id=new_id(Kind.ACTOR),
            name=agent.name,
            type=ActorType.AGENT.value,
            metadata_={"agent_id": agent.id},
            created_at=start,
            updated_at=start,
        )
        for agent in agents
    }
    for agent in agents:
        agent.actor_id = agent_actors[agent.id].id
    users = [
        ActorRow(
            id=new_id(Kind.ACTOR),
            name=name,
            type=ActorType.USER.value,
            metadata_={"email": email},
            created_at=start,
            updated_at=start,
        )
        for name, email in USERS
    ]
    return _Cast(agents, agent_actors, users)


def _message(
    batch: _Batch,
    rng: random.Random,
    group: MessageGroupRow,
    actor: ActorRow,
    position: int,
    texts: list[tuple[ContentPartType, str]],
    *,
    with_attachment: bool = False,
    status: MessageStatus = MessageStatus.ACTIVE,
    error: tuple[str, str] | None = None,
) -> None:
    message = MessageRow(
        id=new_id(Kind.MESSAGE),
        message_group_id=group.id,
        thread_id=group.thread_id,
        actor_id=actor.id,
        position=position,
        status=status.value,
        type=(MessageType.ERROR if error else MessageType.CONTENT).value,
        error_code=error[0] if error else None,
        error_message=error[1] if error else None,
        created_at=group.created_at + timedelta(milliseconds=position),
    )
    content = MessageContentRow(id=new_id(Kind.CONTENT), message_item_id=message.id)
    batch.add(message, content)
    for index, (part_type, text) in enumerate(texts):
        batch.add(
            ContentPartRow(
                id=new_id(Kind.PART),
                content_id=content.id,
                position=index,
                type=part_type.value,
                text=text,
            )
        )
    if with_attachment:
        file_id = new_id(Kind.FILE)
        kind = rng.choice([AttachmentType.FILE, AttachmentType.IMAGE, AttachmentType.LINK])
        batch.add(
            AttachmentRow(
                id=new_id(Kind.ATTACHMENT),
                content_id=content.id,
                position=0,
                type=kind.value,
                file_id=file_id if kind is not AttachmentType.LINK else None,
                url=f"https://files.example.com/{file_id}",
                caption=f"{kind.value} from the user",
            )
        )


def _event(
    batch: _Batch, run: RunRow, seq: int, kind: RunEventType, at: datetime, **payload: Any
) -> int:
    batch.add(RunEventRow(run_id=run.id, seq=seq, type=kind.value, payload=payload, created_at=at))
    return seq + 1


def _run(
    batch: _Batch,
    rng: random.Random,
    cast: _Cast,
    thread: ThreadRow,
    agent: AgentRow,
    user: ActorRow,
    parent: MessageGroupRow | None,
    created: datetime,
    status: RunStatus,
    lease_end: datetime,
) -> MessageGroupRow:
    trigger = MessageGroupRow(
        id=new_id(Kind.MESSAGE_GROUP),
        thread_id=thread.id,
        parent_message_group_id=parent.id if parent else None,
        status=MessageGroupStatus.COMPLETED.value,
        type=MessageGroupType.USER_MESSAGE.value,
        metadata_={"client": rng.choice(["web", "ios", "api"])},
        created_at=created,
    )
    batch.add(trigger)
    _message(
        batch,
        rng,
        trigger,
        user,
        0,
        [(ContentPartType.TEXT, rng.choice(QUESTIONS))],
        with_attachment=rng.random() < 0.25,
    )
    run = RunRow(
        id=new_id(Kind.RUN),
        agent_id=agent.id,
        thread_id=thread.id,
        trigger_message_group_id=trigger.id,
        status=status.value,
        language=rng.choice(["en", "en-GB", "fr", "de"]),
        country=rng.choice(["US", "GB", "FR"]),
        timezone=rng.choice(["America/New_York", "Europe/London", "Europe/Paris"]),
        metadata_={"source": rng.choice(["chat", "email", "slack"])},
        raw_inputs={"text": "demo"},
        created_at=created,
    )
    seq = _event(batch, run, 1, RunEventType.STATUS_CHANGED, created, status="pending")
    reply = trigger
    if status is not RunStatus.PENDING:
        run.started_at = created + timedelta(milliseconds=rng.randint(50, 2000))
        seq = _event(batch, run, seq, RunEventType.STATUS_CHANGED, run.started_at, status="running")
    if status in (RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.RUNNING):
        assert run.started_at is not None
        group_status = {
            RunStatus.SUCCESS: MessageGroupStatus.COMPLETED,
            RunStatus.ERROR: MessageGroupStatus.FAILED,
            RunStatus.RUNNING: MessageGroupStatus.IN_PROGRESS,
        }[status]
        reply = MessageGroupRow(
            id=new_id(Kind.MESSAGE_GROUP),
            thread_id=thread.id,
            parent_message_group_id=trigger.id,
            status=group_status.value,
            type=MessageGroupType.ASSISTANT_MESSAGE.value,
            metadata_={"model": rng.choice(["small", "large"])},
            created_at=run.started_at + timedelta(milliseconds=rng.randint(100, 900)),
        )
        run.message_group_id = reply.id
        batch.add(reply)
        speaker = cast.agent_actors[agent.id]
        if status is RunStatus.ERROR:
            code, text = rng.choice(ERRORS)
            _message(
                batch,
                rng,
                reply,
                speaker,
                0,
                [(ContentPartType.TEXT, text)],
                status=MessageStatus.FAILED,
                error=(code, text),
            )
        else:
            for position in range(rng.randint(1, 3)):
                parts = [
                    (ContentPartType.TEXT, rng.choice(ANSWERS)),
                    (ContentPartType.MARKDOWN, rng.choice(DETAILS)),
                ]
                _message(batch, rng, reply, speaker, position, parts[: rng.randint(1, 2)])
        seq = _event(
            batch, run, seq, RunEventType.MESSAGE_ADDED, reply.created_at, message_group_id=reply.id
        )
    if status.is_terminal:
        assert run.started_at is not None or status is RunStatus.CANCELLED
        run.completed_at = (run.started_at or created) + timedelta(seconds=rng.uniform(0.5, 20))
        run.cost_amount = round(rng.uniform(0.2, 4.0), 2)
        run.cost_unit = "credits"
    if status is RunStatus.ERROR:
        assert run.completed_at is not None
        code, text = rng.choice(ERRORS)
        error = RunErrorRow(
            id=new_id(Kind.ERROR),
            run_id=run.id,
            code=code,
            message=text,
            metadata_={"attempt": rng.randint(1, 3)},
            created_at=run.completed_at,
        )
        batch.add(error)
        seq = _event(batch, run, seq, RunEventType.ERROR_ADDED, run.completed_at, error_id=error.id)
    if status is RunStatus.SUCCESS and rng.random() < 0.4:
        assert run.completed_at is not None
        item = AttachedItemRow(
            id=new_id(Kind.ITEM),
            run_id=run.id,
            message_group_id=reply.id,
            actor_id=rng.choice([cast.agent_actors[agent.id], user]).id,
            key=rng.choice(["sentiment", "ticket", "language_detected"]),
            value={
                "label": rng.choice(["positive", "neutral", "negative"]),
                "score": round(rng.random(), 2),
            },
            created_at=run.completed_at,
        )
        batch.add(item)
        seq = _event(batch, run, seq, RunEventType.ITEM_ATTACHED, run.completed_at, item_id=item.id)
    if run.completed_at is not None:
        seq = _event(
            batch, run, seq, RunEventType.STATUS_CHANGED, run.completed_at, status=status.value
        )
    run.last_event_seq = seq - 1
    if status is RunStatus.RUNNING:
        thread.active_run_id = run.id
        run.lease_owner, run.lease_expires_at = DEMO_WORKER, lease_end
    batch.add(run)
    return reply


def _statuses(rng: random.Random, count: int) -> Iterator[RunStatus]:
    """Every status at least once, then the weighted mix."""
    ordered = list(STATUS_WEIGHTS)
    for index in range(count):
        if index < len(ordered):
            yield ordered[index]
        else:
            yield rng.choices(ordered, weights=list(STATUS_WEIGHTS.values()))[0]


def _oldest_first(statuses: list[RunStatus]) -> None:
    """Unfinished runs are the newest, as they would be in a live system, and the newest of all
    is pending: a newcomer's newest run is one the workers run to SUCCESS."""
    statuses.sort(key=lambda status: not status.is_terminal)
    if RunStatus.PENDING in statuses:
        last_pending = len(statuses) - 1 - statuses[::-1].index(RunStatus.PENDING)
        statuses.append(statuses.pop(last_pending))


async def is_empty(database: Database) -> bool:
    async with database.read() as session:
        return (await session.execute(select(func.count()).select_from(RunRow))).scalar_one() == 0


async def load_demo(
    database: Database,
    *,
    runs: int = 200,
    seed: int | None = 7,
    progress: bool = False,
    now: datetime | None = None,
    org_id: str = DEFAULT_ORG_ID,
) -> int:
    """Write `runs` demo runs (with their threads, messages and events); return how many."""
    rng = random.Random(seed)
    end = now or datetime.now(UTC)
    start = end - timedelta(days=14)
    cast = _cast(start)
    statuses = list(_statuses(rng, runs))
    _oldest_first(statuses)
    step = (end - start - timedelta(minutes=5)) / max(runs, 1)
    people = _Batch(org_id)
    people.add(*cast.agent_actors.values(), *cast.agents, *cast.users)
    async with database.write() as session:
        await insert_rows(session, people.rows)
    bar = tqdm(total=runs, unit="run", disable=not progress)
    created = start + timedelta(minutes=1)
    index = 0
    while index < runs:
        batch = _Batch(org_id)
        while index < runs and len(batch.rows) < 5000:
            agent = rng.choice(cast.agents[: len(AGENTS)])
            user = rng.choice(cast.users)
            title = rng.choice(QUESTIONS)[:40]
            count = min(rng.randint(1, 4), runs - index)
            if RunStatus.PENDING in statuses[index : index + count]:
                agent = cast.echo  # a server with workers runs it to SUCCESS
            thread = ThreadRow(
                id=new_id(Kind.THREAD),
                agent_id=agent.id,
                metadata_={"title": title},
                created_at=created,
                updated_at=created,
            )
            batch.add(thread)
            parent: MessageGroupRow | None = None
            for _ in range(count):
                status = statuses[index]
                parent = _run(
                    batch, rng, cast, thread, agent, user, parent, created, status, end + DEMO_LEASE
                )
                thread.updated_at = created
                created += step
                index += 1
                bar.update(1)
                if not status.is_terminal:
                    break
        async with database.write() as session:
            await insert_rows(session, batch.rows)
    bar.close()
    return runs
