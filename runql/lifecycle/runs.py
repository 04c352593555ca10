"""Creating and cancelling runs: validated first, written in one transaction."""

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from runql import text as texts
from runql.enums import (
    ActorType,
    MessageGroupStatus,
    MessageGroupType,
    MessageStatus,
    MessageType,
    RunEventType,
    RunStatus,
)
from runql.errors import BadUserInput, Conflict, FieldNames, NotFound, RunqlError, own_names
from runql.ids import Kind, new_id, require
from runql.lifecycle import validation
from runql.lifecycle.transitions import transition
from runql.lifecycle.validation import Content
from runql.settings import Settings
from runql.storage.database import Database, ThreadStatements
from runql.storage.events import RunEvent, announce
from runql.storage.raw import arguments, compiled_for, raw_reads
from runql.storage.tables import (
    ActorRow,
    AgentRow,
    AttachmentRow,
    ContentPartRow,
    IdempotencyKeyRow,
    MessageContentRow,
    MessageGroupRow,
    MessageRow,
    RunEventRow,
    RunRow,
    ThreadRow,
    row_of,
)
from runql.storage.types import instant, utcnow
from runql.storage.writes import (
    GroupCommit,
    insert_values,
    postgres_inserts,
    sqlite_inserts,
)
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
            texts.check_text(getattr(self, name), names(name))
        validation.check_content_text(self.content, names)
        texts.check_value(self.metadata, names("metadata"))
        texts.check_value(self.raw_inputs, names("raw_inputs"))

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
    is refused; a refusal names the field at fault as `names` says.

    Concurrent creates share a transaction (group commit, storage.writes.GroupCommit): the
    answer comes after the commit that holds the run."""
    request = request.checked(max_content_bytes=max_content_bytes, json_caps=json_caps, names=names)
    fingerprint = request.fingerprint() if request.idempotency_key is not None else ""
    return await _creator(database).submit(_Create(org_id, request, names, fingerprint))


@dataclass(frozen=True, slots=True)
class _Create:
    """One checked createRun waiting for its batch."""

    org_id: str
    request: RunRequest
    names: FieldNames
    fingerprint: str  # of a request with an idempotency key; else ""


_creators: WeakKeyDictionary[Database, GroupCommit[_Create, RunRow]] = WeakKeyDictionary()


def _creator(database: Database) -> GroupCommit[_Create, RunRow]:
    found = _creators.get(database)
    if found is None:
        writer = _RunWriter(database)
        # PostgreSQL commits two batches at once (one fills while the other commits); SQLite
        # has one writer at a time whatever we do.
        lanes = 1 if database.is_sqlite else POSTGRES_LANES
        found = _creators[database] = GroupCommit(
            database, writer.write, lanes=lanes, own=writer.write_own
        )
    return found


POSTGRES_LANES = 2


_ACTORS_READ = select(col(ActorRow.org_id), col(ActorRow.id)).where(
    col(ActorRow.org_id).in_(bindparam("orgs", expanding=True)),
    col(ActorRow.type) == ActorType.USER.value,
    col(ActorRow.name) == API_ACTOR_NAME,
)
Outcomes = list[RunRow | Exception | None]


@dataclass(frozen=True, slots=True)
class _Reads:
    """The parameters of what a batch reads before it writes (None: not read): its items'
    agents, the threads they continue, and the organizations whose API actor is not known."""

    agents: dict[str, Any] | None
    threads: dict[str, Any] | None
    actors: dict[str, Any] | None


class _RunWriter:
    """Writes a batch of creates in one transaction: the idempotency keys claimed in order,
    then one read each of the agents, the threads (with their latest message group) and the
    organizations' API actors, then one insert per table. An item refused (its agent or
    thread missing, archived or another's; its key used with another request) writes nothing
    and gets its refusal; the others go on.

    A batch without idempotency keys is written in a transaction of its own (`write_own`): on
    a SQLite file on the database's writer thread, the whole transaction in one hand-off; on
    PostgreSQL, if it continues no thread, in autocommit, one read and one statement. Any
    other batch in a session's transaction (`write`)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._actors: dict[str, str] = {}  # org -> its API actor, as committed (never deleted)

    def _reads(self, items: Sequence[_Create]) -> _Reads:
        threads = [item.request.thread_id for item in items if item.request.thread_id]
        unknown = {item.org_id for item in items} - self._actors.keys()
        return _Reads(
            {"ids": list({item.request.agent_id for item in items})} if items else None,
            {"ids": list(set(threads))} if threads else None,
            {"orgs": list(unknown)} if unknown else None,
        )

    def _remember_actors(self, rows: Iterable[Sequence[Any]]) -> None:
        for org_id, actor_id in rows:
            self._actors.setdefault(org_id, actor_id)

    def _batch(
        self,
        items: Sequence[_Create],
        todo: Iterable[int],
        found: tuple[dict[str, "_Agent"], dict[str, "_Thread"]],
        reserved: dict[int, str],
        outcomes: Outcomes,
    ) -> tuple["_Batch", list[_Create]]:
        """The batch's rows, each item's outcome set (its run, or its refusal), and the items
        refused that had reserved their keys."""
        agents, threads = found
        orgs = {items[index].org_id for index in todo}
        batch = _Batch({org: self._actors[org] for org in orgs if org in self._actors})
        released = []
        for index in todo:
            item = items[index]
            try:
                agent_id = _usable_agent(agents, item)
                thread = _usable_thread(threads, item, agent_id)
            except RunqlError as refused:
                outcomes[index] = refused
                if index in reserved:
                    released.append(item)
                continue
            outcomes[index] = batch.add(item, thread, reserved.get(index) or new_id(Kind.RUN))
        return batch, released

    async def write(
        self, session: AsyncSession, items: Sequence[_Create]
    ) -> list[RunRow | Exception]:
        outcomes: Outcomes = [None] * len(items)
        reserved, follows = await _claim_keys(session, items, outcomes)
        todo = [index for index, outcome in enumerate(outcomes) if outcome is None]
        todo = [index for index in todo if index not in follows]
        reads = self._reads([items[index] for index in todo])
        connection = await session.connection()
        if reads.threads and not self._database.is_sqlite:
            await connection.execute(_THREADS_LOCK, reads.threads)
        found = (
            _agents_of(await connection.execute(_AGENTS, reads.agents) if reads.agents else ()),
            _threads_of(
                await connection.execute(_THREADS_READ, reads.threads) if reads.threads else ()
            ),
        )
        if reads.actors:
            self._remember_actors(await connection.execute(_ACTORS_READ, reads.actors))
        batch, released = self._batch(items, todo, found, reserved, outcomes)
        for item in released:
            await _release_key(session, item)
        await batch.write(session)
        for index, earlier in follows.items():
            outcomes[index] = outcomes[earlier]
        return [outcome for outcome in outcomes if outcome is not None]

    async def write_own(self, items: Sequence[_Create]) -> list[RunRow | Exception] | None:
        """The batch in a transaction of its own making, or None (declined: `write` writes
        it) when an item has an idempotency key (claimed in a session's transaction, as
        `write` claims them) or, on PostgreSQL, continues a thread (`write` locks the
        threads, in id order, before it reads them) or when the database is an in-memory
        SQLite one."""
        if any(item.request.idempotency_key for item in items):
            return None
        if self._database.writes_on_thread:
            return await self._write_on_thread(items)
        if self._database.is_sqlite or any(item.request.thread_id for item in items):
            return None
        return await self._write_autocommit(items)

    async def _write_autocommit(self, items: Sequence[_Create]) -> list[RunRow | Exception]:
        """PostgreSQL: the agents (and unknown organizations' API actors) read, then every row
        and the runs' NOTIFY in one statement in autocommit, its own transaction: two round
        trips, where a session's transaction costs BEGIN, the read, the insert, the NOTIFY and
        COMMIT. Each statement sees what is committed when it starts, as in a READ COMMITTED
        transaction (the read takes no lock in either)."""
        reads = self._reads(items)
        outcomes: Outcomes = [None] * len(items)
        async with raw_reads(self._database) as raw:
            agents = await raw.all(_AGENTS, reads.agents) if reads.agents else []
            if reads.actors:
                self._remember_actors(await raw.all(_ACTORS_READ, reads.actors))
            batch, _ = self._batch(items, range(len(items)), (_agents_of(agents), {}), {}, outcomes)
            if batch.events:
                notices = [event.announcement() for event in batch.events]
                await raw.run(*postgres_inserts(batch.rows, raw.dialect, notices))
        if batch.events:
            self._database.committed(batch.events)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _write_on_thread(self, items: Sequence[_Create]) -> list[RunRow | Exception]:
        """A SQLite file: the batch as one transaction on the database's writer thread."""
        database = self._database
        dialect = database.engine.dialect
        reads = self._reads(items)
        prepared = [
            arguments(*compiled_for(statement, dialect), params, False) if params else None
            for statement, params in (
                (_AGENTS, reads.agents),
                (_THREADS_READ, reads.threads),
                (_ACTORS_READ, reads.actors),
            )
        ]
        touch = compiled_for(_TOUCH_THREAD, dialect)

        def work(statements: ThreadStatements) -> tuple[Outcomes, list[RunEvent]]:
            agents, threads, actors = (
                statements.execute(*read).fetchall() if read else [] for read in prepared
            )
            self._remember_actors(actors)
            outcomes: Outcomes = [None] * len(items)
            found = (_agents_of(agents), _threads_of(threads))
            batch, _ = self._batch(items, range(len(items)), found, {}, outcomes)
            for sql, rows in sqlite_inserts(batch.rows, dialect):
                statements.executemany(sql, rows)
            touched = [arguments(*touch, params, False) for params in batch.touched_threads()]
            if touched:
                statements.executemany(touched[0][0], [args for _, args in touched])
            return outcomes, batch.events

        outcomes = await database.write_on_thread(work)
        return [outcome for outcome in outcomes if outcome is not None]


async def _claim_keys(
    session: AsyncSession, items: Sequence[_Create], outcomes: list[RunRow | Exception | None]
) -> tuple[dict[int, str], dict[int, int]]:
    """Claim the batch's idempotency keys, in order: the run ids reserved by item; an item
    with a key an earlier item of the batch holds follows that one (its outcome is that one's).
    A key that made a run before answers with that run; one used with another request is a
    Conflict."""
    reserved: dict[int, str] = {}
    follows: dict[int, int] = {}
    first: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        key = item.request.idempotency_key
        if key is None:
            continue
        earlier = first.setdefault((item.org_id, key), index)
        if earlier != index:
            if items[earlier].fingerprint == item.fingerprint:
                follows[index] = earlier
            else:
                outcomes[index] = _key_conflict(item.names)
            continue
        try:
            run, run_id = await _claim_key(session, item.org_id, item.request, item.fingerprint)
        except Conflict:
            outcomes[index] = _key_conflict(item.names)
            continue
        if run is not None:
            outcomes[index] = run
        elif run_id is not None:
            reserved[index] = run_id
    return reserved, follows


def _key_conflict(names: FieldNames) -> Conflict:
    return Conflict(
        "this idempotency key was used with a different request", field=names("idempotency_key")
    )


async def _claim_key(
    session: AsyncSession, org_id: str, request: RunRequest, fingerprint: str
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
            request_hash=fingerprint,
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
    if existing.request_hash != fingerprint:
        raise Conflict("this idempotency key was used with a different request")
    return await session.get(RunRow, existing.run_id), None


async def _release_key(session: AsyncSession, item: _Create) -> None:
    """Give back the key a refused item reserved in this transaction."""
    await session.execute(
        delete(IdempotencyKeyRow).where(
            col(IdempotencyKeyRow.org_id) == item.org_id,
            col(IdempotencyKeyRow.key) == item.request.idempotency_key,
        )
    )


@dataclass(frozen=True, slots=True)
class _Agent:
    org_id: str
    archived: bool


@dataclass(frozen=True, slots=True)
class _Thread:
    id: str
    org_id: str
    agent_id: str
    latest_group: str | None  # its last message group, the new one's parent
    latest_at: datetime | None = None  # when that group was made (by whichever process)
    new: bool = False


_AGENTS = select(
    col(AgentRow.id), col(AgentRow.org_id), col(AgentRow.archived_at).is_not(None)
).where(col(AgentRow.id).in_(bindparam("ids", expanding=True)))


def _agents_of(rows: Iterable[Sequence[Any]]) -> dict[str, _Agent]:
    return {agent_id: _Agent(org_id, bool(archived)) for agent_id, org_id, archived in rows}


_LATEST_GROUP = (
    select(col(MessageGroupRow.id))
    .where(col(MessageGroupRow.thread_id) == col(ThreadRow.id))
    .order_by(col(MessageGroupRow.created_at).desc(), col(MessageGroupRow.id).desc())
    .limit(1)
    .correlate(ThreadRow)
    .scalar_subquery()
)
_LATEST_AT = (
    select(func.max(col(MessageGroupRow.created_at)))
    .where(col(MessageGroupRow.thread_id) == col(ThreadRow.id))
    .correlate(ThreadRow)
    .scalar_subquery()
)
_THREADS_READ = select(
    col(ThreadRow.id), col(ThreadRow.org_id), col(ThreadRow.agent_id), _LATEST_GROUP, _LATEST_AT
).where(col(ThreadRow.id).in_(bindparam("ids", expanding=True)))


# PostgreSQL: the threads a batch continues, locked in id order until its commit, before their
# latest message groups are read (a statement after the lock sees what the last holder
# committed): two gateways continuing one thread chain their messages instead of both following
# the same one. (SQLite: BEGIN IMMEDIATE holds the file's write lock from the start.)
_THREADS_LOCK = (
    select(col(ThreadRow.id))
    .where(col(ThreadRow.id).in_(bindparam("ids", expanding=True)))
    .order_by(col(ThreadRow.id))
    .with_for_update()
)


def _threads_of(rows: Iterable[Sequence[Any]]) -> dict[str, _Thread]:
    return {
        thread_id: _Thread(thread_id, org_id, agent_id, latest, None if at is None else instant(at))
        for thread_id, org_id, agent_id, latest, at in rows
    }


def _usable_agent(agents: dict[str, _Agent], item: _Create) -> str:
    agent_id = item.request.agent_id
    agent = agents.get(agent_id)
    if agent is None or agent.org_id != item.org_id:  # another's is as good as missing
        raise NotFound(f"there is no agent {agent_id}", field=item.names("agent_id"))
    if agent.archived:
        raise Conflict(
            f"agent {agent_id} is archived and takes no new runs", field=item.names("agent_id")
        )
    return agent_id


def _usable_thread(threads: dict[str, _Thread], item: _Create, agent_id: str) -> _Thread:
    thread_id = item.request.thread_id
    if thread_id is None:
        return _Thread(new_id(Kind.THREAD), item.org_id, agent_id, None, new=True)
    thread = threads.get(thread_id)
    if thread is None or thread.org_id != item.org_id:
        raise NotFound(f"there is no thread {thread_id}", field=item.names("thread_id"))
    if thread.agent_id != agent_id:
        raise Conflict(
            f"thread {thread_id} belongs to another agent", field=item.names("thread_id")
        )
    return thread


_TICK = timedelta(microseconds=1)
_THREADS: Table = ThreadRow.__table__  # type: ignore[attr-defined]
_TOUCH_THREAD = (
    update(_THREADS)
    .where(_THREADS.c.id == bindparam("thread_id"))
    .values(updated_at=bindparam("touched_at"))
)
_PENDING = {"status": RunStatus.PENDING.value}
_ATTRIBUTE_OF = {"metadata": "metadata_"}  # a run column's attribute, where its name differs


class _Batch:
    """The rows of a batch of new runs, as column values by table, written one statement a
    table. Runs are stamped in the batch's order, a microsecond apart at least, so that two
    messages of one thread in one batch keep their order."""

    def __init__(self, actors: dict[str, str]) -> None:
        self.rows: defaultdict[Table, list[dict[str, Any]]] = defaultdict(list)
        self.actors = actors
        self.touched: dict[str, datetime] = {}  # existing threads: when they last got a message
        self.latest: dict[str, str] = {}  # thread -> its latest message group in this batch
        self.events: list[RunEvent] = []
        self.last = utcnow() - _TICK

    def _now(self) -> datetime:
        now = utcnow()
        self.last = now if now > self.last else self.last + _TICK
        return self.last

    def _actor(self, org_id: str, now: datetime) -> str:
        actor_id = self.actors.get(org_id)
        if actor_id is None:
            actor_id = self.actors[org_id] = new_id(Kind.ACTOR)
            self.rows[_ACTORS].append(
                {
                    "id": actor_id,
                    "org_id": org_id,
                    "name": API_ACTOR_NAME,
                    "type": ActorType.USER.value,
                    "metadata": {"source": "api"},
                    "created_at": now,
                    "updated_at": now,
                }
            )
        return actor_id

    def add(self, item: _Create, thread: _Thread, run_id: str) -> RunRow:
        org_id, request, now = item.org_id, item.request, self._now()
        if thread.latest_at is not None and now <= thread.latest_at:
            # another process's clock ran ahead of this one's: the new message still comes
            # after its parent, so the thread's latest group stays the one that was added last
            now = self.last = thread.latest_at + _TICK
        if thread.new:
            self.rows[_THREADS].append(
                {
                    "id": thread.id,
                    "org_id": org_id,
                    "agent_id": thread.agent_id,
                    "metadata": {},
                    "created_at": now,
                    "updated_at": now,
                }
            )
        else:
            self.touched[thread.id] = now
        group_id = new_id(Kind.MESSAGE_GROUP)
        parent = self.latest.get(thread.id, thread.latest_group)
        self.latest[thread.id] = group_id
        self.rows[_GROUPS].append(
            {
                "id": group_id,
                "org_id": org_id,
                "thread_id": thread.id,
                "parent_message_group_id": parent,
                "status": MessageGroupStatus.COMPLETED.value,
                "type": MessageGroupType.USER_MESSAGE.value,
                "metadata": {},
                "created_at": now,
            }
        )
        self._message(org_id, group_id, thread.id, self._actor(org_id, now), request.content, now)
        values = {
            "id": run_id,
            "org_id": org_id,
            "agent_id": thread.agent_id,
            "thread_id": thread.id,
            "trigger_message_group_id": group_id,
            "status": RunStatus.PENDING.value,
            "language": request.language,
            "country": request.country,
            "timezone": request.timezone,
            "metadata": request.metadata,
            "raw_inputs": request.raw_inputs,
            "created_at": now,
            "last_event_seq": 1,
        }
        self.rows[_RUNS].append(values)
        run = row_of(RunRow, {_ATTRIBUTE_OF.get(name, name): v for name, v in values.items()})
        event = RunEvent(org_id, run_id, 1, RunEventType.STATUS_CHANGED, _PENDING, now)
        self.events.append(event)
        self.rows[_EVENTS].append(event.values())
        return run

    def _message(
        self,
        org_id: str,
        group_id: str,
        thread_id: str,
        actor_id: str,
        content: Content,
        now: datetime,
    ) -> None:
        message_id, content_id = new_id(Kind.MESSAGE), new_id(Kind.CONTENT)
        self.rows[_MESSAGES].append(
            {
                "id": message_id,
                "org_id": org_id,
                "message_group_id": group_id,
                "thread_id": thread_id,
                "actor_id": actor_id,
                "position": 0,
                "status": MessageStatus.ACTIVE.value,
                "type": MessageType.CONTENT.value,
                "created_at": now,
            }
        )
        self.rows[_CONTENTS].append(
            {"id": content_id, "org_id": org_id, "message_item_id": message_id}
        )
        self.rows[_PARTS] += [
            {
                "id": new_id(Kind.PART),
                "org_id": org_id,
                "content_id": content_id,
                "position": index,
                "type": part.type.value,
                "text": part.text,
            }
            for index, part in enumerate(content.parts)
        ]
        self.rows[_ATTACHMENTS] += [
            {
                "id": new_id(Kind.ATTACHMENT),
                "org_id": org_id,
                "content_id": content_id,
                "position": index,
                "type": a.type.value,
                "file_id": a.file_id,
                "url": a.url,
                "caption": a.caption,
            }
            for index, a in enumerate(content.attachments)
        ]

    def touched_threads(self) -> list[dict[str, Any]]:
        """The existing threads' new `updated_at`, in one lock order for all writers."""
        return [
            {"thread_id": thread_id, "touched_at": at}
            for thread_id, at in sorted(self.touched.items())
        ]

    async def write(self, session: AsyncSession) -> None:
        await insert_values(session, self.rows)
        if self.touched:
            await (await session.connection()).execute(_TOUCH_THREAD, self.touched_threads())
        await announce(session, self.events)


_ACTORS: Table = ActorRow.__table__  # type: ignore[attr-defined]
_GROUPS: Table = MessageGroupRow.__table__  # type: ignore[attr-defined]
_MESSAGES: Table = MessageRow.__table__  # type: ignore[attr-defined]
_CONTENTS: Table = MessageContentRow.__table__  # type: ignore[attr-defined]
_PARTS: Table = ContentPartRow.__table__  # type: ignore[attr-defined]
_ATTACHMENTS: Table = AttachmentRow.__table__  # type: ignore[attr-defined]
_RUNS: Table = RunRow.__table__  # type: ignore[attr-defined]
_EVENTS: Table = RunEventRow.__table__  # type: ignore[attr-defined]


async def _owned(session: AsyncSession, table: type[Row], row_id: str, org_id: str) -> Row | None:
    """The row, if it belongs to the organization: another's is as good as missing."""
    row = await session.get(table, row_id)
    return row if row is not None and row.org_id == org_id else None  # type: ignore[attr-defined]


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
