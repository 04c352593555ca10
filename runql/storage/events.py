"""The run_events log: appended in the transaction that makes the change, announced after commit.

An announcement carries the event it announces when it is small enough for a PostgreSQL
NOTIFY (under MAX_CARRIED bytes), so a follower that has every event before it need not read
the log; the log stays the truth for anything else."""

import json
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from runql.enums import RunEventType
from runql.errors import Conflict, NotFound
from runql.storage.tables import RunEventRow, RunRow, row_of
from runql.storage.types import utcnow

_UNCOMMITTED = "runql.uncommitted_events"
NOTIFY_CHANNEL = "runql_events"
PROCESS = secrets.token_hex(6)  # tells this process's own announcements apart
MAX_CARRIED = 7900  # bytes of an announcement that carries its event (NOTIFY takes < 8000)


@dataclass(frozen=True, slots=True)
class RunEvent:
    org_id: str
    run_id: str
    seq: int
    type: RunEventType
    payload: dict[str, Any]
    created_at: datetime

    @property
    def status(self) -> str | None:
        return self.payload.get("status") if self.type is RunEventType.STATUS_CHANGED else None

    def announcement(self) -> str:
        """What other processes hear of this event (PostgreSQL NOTIFY, after the commit): its
        ids, and the event itself when that fits in MAX_CARRIED bytes."""
        head, tail, rest = self.around_seq()
        ids = f"{head}{self.seq}{tail}"
        if rest is None:
            return ids
        carried = ids + rest
        return carried if len(carried.encode()) < MAX_CARRIED else ids

    def around_seq(self) -> tuple[str, str, str | None]:
        """The announcement in parts, for a statement that numbers the event itself
        (announcement_sql): the ids before the seq and after it, and what follows them when
        the event is carried (None: a payload only the log's encoding can judge, never
        carried)."""
        head = f"{PROCESS}|{self.org_id}|{self.run_id}|"
        tail = f"|{self.status or ''}"
        try:
            document = json.dumps(self.payload)
        except (TypeError, ValueError):  # the log's own encoding is the judge of such a payload
            return head, tail, None
        return head, tail, "|".join(("", self.type.value, self.created_at.isoformat(), document))

    def values(self) -> dict[str, Any]:
        """The event's row in the log, as column values (storage.writes.insert_values')."""
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "type": self.type.value,
            "payload": self.payload,
            "created_at": self.created_at,
        }

    def row(self, dialect: str) -> RunEventRow:
        """The event as the log holds it, read back through `dialect` (PostgreSQL's jsonb
        orders object keys its own way)."""
        payload = _jsonb_order(self.payload) if dialect == "postgresql" else self.payload
        return row_of(
            RunEventRow,
            {
                "run_id": self.run_id,
                "seq": self.seq,
                "type": self.type.value,
                "payload": payload,
                "created_at": self.created_at,
            },
        )


def _jsonb_order(value: Any) -> Any:
    """`value` with its objects' keys in jsonb's order: shorter keys first, then bytewise."""
    if isinstance(value, dict):
        ordered = sorted(value, key=lambda key: (len(key.encode()), key.encode()))
        return {key: _jsonb_order(value[key]) for key in ordered}
    if isinstance(value, list):
        return [_jsonb_order(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class Announcement:
    """A run event as another process heard of it: with the event, when it was carried."""

    origin: str
    org_id: str
    run_id: str
    seq: int
    status: str | None
    event: RunEvent | None = None

    @classmethod
    def parse(cls, payload: str) -> "Announcement":
        origin, org_id, run_id, seq, status, *carried = payload.split("|", 7)
        heard = cls(origin, org_id, run_id, int(seq), status or None)
        if not carried:
            return heard
        type, created_at, document = carried
        try:
            event = RunEvent(
                org_id,
                run_id,
                int(seq),
                RunEventType(type),
                json.loads(document),
                datetime.fromisoformat(created_at),
            )
        except (ValueError, TypeError) as error:
            raise ValueError(f"a malformed event: {error}") from error
        return cls(origin, org_id, run_id, int(seq), status or None, event)


CommitListener = Callable[[RunEvent], None]


async def append_event(
    session: AsyncSession,
    run_id: str,
    type: RunEventType,
    payload: dict[str, Any],
    *,
    held_by: str | None = None,
) -> RunEvent:
    """Append the run's next event. The run's counter is bumped in the same statement that
    locks its row, so sequence numbers have no gaps and no duplicates. With `held_by`, only
    while that worker holds the run's lease: otherwise Conflict, and nothing is appended."""
    conditions = [col(RunRow.id) == run_id]
    if held_by is not None:
        conditions.append(col(RunRow.lease_owner) == held_by)
    bump = (
        update(RunRow)
        .where(*conditions)
        .values(last_event_seq=col(RunRow.last_event_seq) + 1)
        .returning(col(RunRow.last_event_seq), col(RunRow.org_id))
        .execution_options(synchronize_session=False)
    )
    bumped = (await session.execute(bump)).one_or_none()
    if bumped is None:
        if held_by is None:
            raise NotFound(f"there is no run {run_id}", field="id")
        raise Conflict(f"run {run_id} is no longer leased to {held_by}", field="id")
    seq, org_id = bumped
    event = RunEvent(org_id, run_id, seq, type, payload, utcnow())
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, :message)"),
            {"channel": NOTIFY_CHANNEL, "message": event.announcement()},
        )
    session.add(
        RunEventRow(
            run_id=run_id, seq=seq, type=type.value, payload=payload, created_at=event.created_at
        )
    )
    session.info.setdefault(_UNCOMMITTED, []).append(event)
    return event


async def announce(session: AsyncSession, events: list[RunEvent]) -> None:
    """Events whose rows the caller inserted in this transaction: notified in it (PostgreSQL:
    one statement for all) and announced to the commit listeners after the commit, as
    append_event's are."""
    if events and session.get_bind().dialect.name == "postgresql":
        await session.execute(
            _NOTIFY_EACH,
            {"channel": NOTIFY_CHANNEL, "messages": [event.announcement() for event in events]},
        )
    announce_after_commit(session, events)


def announce_after_commit(session: AsyncSession, events: list[RunEvent]) -> None:
    """Events whose rows (and, on PostgreSQL, notices) the caller wrote in this transaction:
    announced to the commit listeners once it commits (Database.write), never after a
    rollback."""
    session.info.setdefault(_UNCOMMITTED, []).extend(events)


def announcement_sql(head: str, seq: str, tail: str, rest: str) -> str:
    """RunEvent.announcement as a PostgreSQL expression over its parts (RunEvent.around_seq)
    and the event's number, given as SQL: the event carried while under MAX_CARRIED bytes (a
    NULL `rest` never is)."""
    ids = f"{head} || ({seq})::text || {tail}"
    return (
        f"CASE WHEN octet_length({ids} || {rest}) < {MAX_CARRIED} "
        f"THEN {ids} || {rest} ELSE {ids} END"
    )


_NOTIFY_EACH = text(
    "SELECT pg_notify(:channel, message) FROM unnest(CAST(:messages AS text[])) AS message"
)


def take_uncommitted(session: AsyncSession) -> list[RunEvent]:
    events: list[RunEvent] = session.info.pop(_UNCOMMITTED, [])
    return events


async def events_after(
    session: AsyncSession, run_id: str, after: int, limit: int = 500
) -> list[RunEventRow]:
    """The run's events numbered above `after`, in order, at most `limit` of them."""
    statement = (
        select(RunEventRow)
        .where(col(RunEventRow.run_id) == run_id, col(RunEventRow.seq) > after)
        .order_by(col(RunEventRow.seq))
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars().all())


_LOGGED_AFTER = (
    select(
        col(RunEventRow.id),
        col(RunRow.org_id),
        col(RunEventRow.run_id),
        col(RunEventRow.seq),
        case(
            (
                col(RunEventRow.type) == RunEventType.STATUS_CHANGED.value,
                func.json_extract(col(RunEventRow.payload), "$.status"),
            )
        ),
    )
    .join(RunRow, col(RunRow.id) == col(RunEventRow.run_id))
    .where(col(RunEventRow.id) > bindparam("after"))
    .order_by(col(RunEventRow.id))
    .limit(500)
).compile(dialect=sqlite.dialect(paramstyle="named"))


@dataclass(frozen=True, slots=True)
class Logged:
    """A committed run_events row, as a tail of the log on SQLite reads it."""

    id: int
    org_id: str
    run_id: str
    seq: int
    status: str | None


def last_logged_id(connection: sqlite3.Connection) -> int:
    """The highest run_events id committed so far (0 for an empty log)."""
    row = connection.execute(f"SELECT max(id) FROM {RunEventRow.__tablename__}").fetchone()
    return int(row[0] or 0)


def logged_after(connection: sqlite3.Connection, after: int) -> list[Logged]:
    """Up to 500 committed run_events rows with ids above `after`, in id order, over a plain
    sqlite3 connection: one range read of the primary key. On SQLite the writer holds the
    database until it commits, so ids become visible in increasing order and a tail that
    remembers the last id it read misses none."""
    rows = connection.execute(str(_LOGGED_AFTER), _LOGGED_AFTER.construct_params({"after": after}))
    return [Logged(*row) for row in rows.fetchall()]
