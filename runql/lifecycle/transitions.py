"""The run state machine, enforced by conditional updates.

PENDING -> RUNNING -> SUCCESS | ERROR, and PENDING | RUNNING -> CANCELLED. Terminal states never
change. Each transition is one UPDATE whose WHERE names the states it may leave, in the same
transaction as its run_events row. A worker that shuts down releases its run: RUNNING -> PENDING,
the one transition clients cannot ask for.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Table, bindparam, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from runql.enums import RunEventType, RunStatus
from runql.errors import Conflict, NotFound
from runql.storage.database import Database
from runql.storage.events import RunEvent, append_event
from runql.storage.tables import RunRow, ThreadRow
from runql.storage.types import utcnow
from runql.storage.writes import HeldBatch, Then, log_events, write_held

SOURCES: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.RUNNING: frozenset({RunStatus.PENDING}),
    RunStatus.SUCCESS: frozenset({RunStatus.RUNNING}),
    RunStatus.ERROR: frozenset({RunStatus.RUNNING}),
    RunStatus.CANCELLED: frozenset({RunStatus.PENDING, RunStatus.RUNNING}),
}
RELEASE_SOURCES = frozenset({RunStatus.RUNNING})


def _changes(target: RunStatus, now: datetime) -> dict[str, Any]:
    changes: dict[str, Any] = {"status": target.value}
    if target is RunStatus.RUNNING:
        changes["started_at"] = now
    elif target is RunStatus.PENDING:
        changes.update(started_at=None, lease_owner=None, lease_expires_at=None)
    if target.is_terminal:
        changes.update(completed_at=now, lease_owner=None, lease_expires_at=None)
    return changes


async def transition(
    session: AsyncSession,
    run_id: str,
    target: RunStatus,
    *,
    held_by: str | None = None,
    **changes: Any,
) -> RunRow:
    """Move the run to `target` and set `changes`, or raise Conflict (NotFound when there is
    no such run). With `held_by`, only the worker holding the run's lease may move it."""
    sources = RELEASE_SOURCES if target is RunStatus.PENDING else SOURCES[target]
    conditions = [col(RunRow.id) == run_id, col(RunRow.status).in_([s.value for s in sources])]
    if held_by is not None:
        conditions.append(col(RunRow.lease_owner) == held_by)
    statement = (
        update(RunRow)
        .where(*conditions)
        .values({**_changes(target, utcnow()), **changes})
        .returning(RunRow)
        .execution_options(populate_existing=True)
    )
    row = (await session.execute(statement)).scalars().first()
    if row is None:
        raise await _refusal(session, run_id, target, held_by)
    await _occupy_thread(session, row, executing=target is RunStatus.RUNNING)
    await append_event(session, run_id, RunEventType.STATUS_CHANGED, {"status": target.value})
    return row


Preceding = Sequence[tuple[RunEventType, dict[str, Any]]]  # events before a STATUS_CHANGED


async def transition_many(
    session: AsyncSession,
    run_ids: Sequence[str],
    target: RunStatus,
    *,
    held_by: str | None = None,
    each: Mapping[str, Mapping[str, Any]] | None = None,
    before: Mapping[str, Preceding] | None = None,
    **changes: Any,
) -> list[RunRow]:
    """`transition` for many runs (of distinct threads) in a few statements, whatever their
    number: every run moves to `target`, or Conflict is raised (the caller's transaction is
    to roll back; `transition` alone says which run refused and why). `changes` apply to
    all, `each` gives a run's own; `before` the events a run appends ahead of its
    STATUS_CHANGED, numbered with it. The rows come back in `run_ids`' order."""
    if not run_ids:
        return []
    sources = RELEASE_SOURCES if target is RunStatus.PENDING else SOURCES[target]
    conditions: list[Any] = [
        col(RunRow.id).in_(run_ids),
        col(RunRow.status).in_([s.value for s in sources]),
    ]
    if held_by is not None:
        conditions.append(col(RunRow.lease_owner) == held_by)
    preceding = before or {}
    bumps = {run_id: len(preceding.get(run_id, ())) + 1 for run_id in run_ids}
    values: dict[str, Any] = {
        **_changes(target, utcnow()),
        **changes,
        **_per_run(run_ids, each or {}),
        "last_event_seq": col(RunRow.last_event_seq) + _by_run(bumps),
    }
    statement = (
        update(RunRow)
        .where(*conditions)
        .values(values)
        .returning(RunRow)
        .execution_options(populate_existing=True)
    )
    rows = {row.id: row for row in (await session.execute(statement)).scalars().all()}
    if len(rows) != len(run_ids):
        raise Conflict(f"{len(run_ids) - len(rows)} of the runs cannot become {target.value}")
    ordered = [rows[run_id] for run_id in run_ids]
    await _occupy_threads(session, ordered, executing=target is RunStatus.RUNNING)
    status = (RunEventType.STATUS_CHANGED, {"status": target.value})
    now, events = utcnow(), []
    for row in ordered:
        appended = [*preceding.get(row.id, ()), status]
        events += _numbered(row.org_id, row.id, row.last_event_seq, appended, now)
    await log_events(session, events)
    return ordered


async def append_held(
    session: AsyncSession,
    appended: Mapping[str, Preceding],
    *,
    held_by: str,
    each: Mapping[str, Mapping[str, Any]] | None = None,
    values: dict[Table, list[dict[str, Any]]] | None = None,
    then: Then = (),
) -> None:
    """Events for many runs, in a few statements whatever their number: one UPDATE bumps
    each run's `last_event_seq` by its events' count while `held_by` holds its lease (its row
    locked until the commit, so numbers have no gaps and no duplicates), then the events are
    inserted and notified at once, with the rows of `values`, and the statements of `then`
    run (storage.writes.log_events).
    Raises Conflict when a run is no longer `held_by`'s; the caller's transaction is to roll
    back (append_event alone says which). `each` gives a run's own changes, as
    transition_many's does."""
    if not appended:
        return
    await lock_in_id_order(session, list(appended))
    bumped = (await session.execute(*held_bump(appended, held_by=held_by, each=each))).all()
    await log_events(session, numbered_held(appended, bumped, held_by), values, then)


async def lock_in_id_order(session: AsyncSession, run_ids: Sequence[str]) -> None:
    """On PostgreSQL, the runs' rows locked in id order until the commit: the order in which
    every transaction that updates many running runs locks them (a flush's statement,
    storage.writes.write_held; a run's end; the keeper's lease renewals), so that no two of
    them deadlock (PostgreSQL breaks a deadlock after its deadlock_timeout, a second by default,
    while every stream of the process waits). An UPDATE by `id IN` locks its rows in the order
    its plan meets them. SQLite serializes writers instead."""
    if session.get_bind().dialect.name == "postgresql":
        await locked_ids(session, run_ids)


async def locked_ids(session: AsyncSession, run_ids: Sequence[str], *where: Any) -> set[str]:
    """The runs among `run_ids` that meet `where`; on PostgreSQL their rows are locked, in id
    order (lock_in_id_order's), until the commit."""
    found = select(col(RunRow.id)).where(col(RunRow.id).in_(sorted(run_ids)), *where)
    if session.get_bind().dialect.name == "postgresql":
        found = found.order_by(col(RunRow.id)).with_for_update()
    return set((await session.execute(found)).scalars().all())


def held_bump(
    appended: Mapping[str, Preceding],
    *,
    held_by: str,
    each: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """append_held's UPDATE and its parameters: each run's `last_event_seq` bumped by its
    events' count (and its `each` changes set) while `held_by` holds its lease, RETURNING its
    id, organization and new `last_event_seq`, which numbered_held reads. Runs that append as
    many events each and change nothing else (a batch of later flushes) share one statement,
    built and compiled once; others get a statement of their own, with a CASE by run."""
    run_ids = sorted(appended)
    bumps = {run_id: len(appended[run_id]) for run_id in run_ids}
    counts = set(bumps.values())
    if not each and len(counts) == 1:
        return _BUMP_HELD, {"run_ids": run_ids, "held_by": held_by, "bump": counts.pop()}
    statement = (
        update(RunRow)
        .where(col(RunRow.id).in_(run_ids), col(RunRow.lease_owner) == held_by)
        .values(
            **_per_run(run_ids, each or {}),
            last_event_seq=col(RunRow.last_event_seq) + _by_run(bumps),
        )
        .returning(*_BUMPED)
        .execution_options(synchronize_session=False)
    )
    return statement, {}


_BUMPED = (col(RunRow.id), col(RunRow.org_id), col(RunRow.last_event_seq))
_RUNS: Table = RunRow.__table__  # type: ignore[attr-defined]
# On the table, not the mapped class: a Core UPDATE, which skips the ORM's bulk update (about a
# quarter of a flush batch's statements' CPU in the gateway's profile at 100 streams).
_BUMP_HELD = (
    update(_RUNS)
    .where(
        _RUNS.c.id.in_(bindparam("run_ids", expanding=True)),
        _RUNS.c.lease_owner == bindparam("held_by"),
    )
    .values(last_event_seq=_RUNS.c.last_event_seq + bindparam("bump", type_=Integer))
    .returning(_RUNS.c.id, _RUNS.c.org_id, _RUNS.c.last_event_seq)
)


async def append_held_at_once(
    database: Database,
    appended: Mapping[str, Preceding],
    *,
    held_by: str,
    orgs: Mapping[str, str],
    groups: Mapping[str, str] | None = None,
    values: dict[Table, list[dict[str, Any]]] | None = None,
    texts: Sequence[tuple[str, str]] = (),
) -> list[RunEvent]:
    """append_held on PostgreSQL in one statement, a transaction of its own
    (storage.writes.write_held): the same bump, events and rows, `texts` (part id, more)
    appended to their parts' text and a run's message group set from `groups`. Raises
    Conflict, having written nothing, when a run is no longer `held_by`'s. `orgs` gives each
    run's organization. The events are announced to the commit listeners once committed."""
    now = utcnow()
    relative = [
        event
        for run_id in sorted(appended)
        for event in _numbered(orgs[run_id], run_id, 0, appended[run_id], now)
    ]
    counts = {run_id: len(events) for run_id, events in appended.items()}
    batch = HeldBatch(relative, held_by, counts, groups or {}, values or {}, texts)
    bumped = await write_held(database, batch)
    events = numbered_held(appended, bumped, held_by, now)
    database.committed(events)
    return events


def numbered_held(
    appended: Mapping[str, Preceding],
    bumped: Sequence[Sequence[Any]],
    held_by: str,
    now: datetime | None = None,
) -> list[RunEvent]:
    """The events of held_bump's runs, numbered from the rows it returned (id, organization,
    last_event_seq), made at `now` (by default now); Conflict when a run was no longer
    `held_by`'s."""
    if len(bumped) != len(appended):
        raise Conflict(f"{len(appended) - len(bumped)} of the runs are no longer {held_by}'s")
    now, events = now or utcnow(), []
    for run_id, org_id, last in sorted(tuple(row) for row in bumped):
        events += _numbered(org_id, run_id, last, appended[run_id], now)
    return events


def _numbered(
    org_id: str, run_id: str, last: int, appended: Preceding, now: datetime
) -> list[RunEvent]:
    """A run's events appended together, numbered up to its bumped `last_event_seq`."""
    first = last - len(appended) + 1
    return [
        RunEvent(org_id, run_id, first + index, type, payload, now)
        for index, (type, payload) in enumerate(appended)
    ]


def _by_run(values: Mapping[str, Any]) -> Any:
    """A value by run: the value itself when all runs have the same, else a CASE on the id."""
    distinct = set(values.values())
    if len(distinct) == 1:
        return next(iter(distinct))
    return case(dict(values), value=col(RunRow.id))


def _per_run(run_ids: Sequence[str], each: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    columns = {name for changes in each.values() for name in changes}
    return {
        name: _by_run({run_id: each.get(run_id, {}).get(name) for run_id in run_ids})
        for name in sorted(columns)
    }


async def _occupy_threads(session: AsyncSession, runs: list[RunRow], *, executing: bool) -> None:
    """_occupy_thread for runs of distinct threads, in one statement."""
    threads = col(ThreadRow.id).in_([run.thread_id for run in runs])
    if executing:
        taken = await session.execute(
            update(ThreadRow)
            .where(threads, col(ThreadRow.active_run_id).is_(None))
            .values(active_run_id=_thread_run({run.thread_id: run.id for run in runs}))
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != len(runs):  # type: ignore[attr-defined]
            raise Conflict("a thread is executing another run", field="id")
    else:
        await session.execute(
            update(ThreadRow)
            .where(threads, col(ThreadRow.active_run_id).in_([run.id for run in runs]))
            .values(active_run_id=None)
            .execution_options(synchronize_session=False)
        )


def _thread_run(runs: Mapping[str, str]) -> Any:
    if len(runs) == 1:
        return next(iter(runs.values()))
    return case(dict(runs), value=col(ThreadRow.id))


async def _occupy_thread(session: AsyncSession, run: RunRow, *, executing: bool) -> None:
    """A thread executes one run at a time: a run that starts takes its thread (or the
    transition fails), and one that stops gives it back. Conditional updates of the thread's
    row make this safe with any number of workers."""
    thread = col(ThreadRow.id) == run.thread_id
    if executing:
        taken = await session.execute(
            update(ThreadRow)
            .where(thread, col(ThreadRow.active_run_id).is_(None))
            .values(active_run_id=run.id)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(f"thread {run.thread_id} is executing another run", field="id")
    else:
        await session.execute(
            update(ThreadRow)
            .where(thread, col(ThreadRow.active_run_id) == run.id)
            .values(active_run_id=None)
            .execution_options(synchronize_session=False)
        )


async def _refusal(
    session: AsyncSession, run_id: str, target: RunStatus, held_by: str | None
) -> Exception:
    current = await session.get(RunRow, run_id, populate_existing=True)
    if current is None:
        return NotFound(f"there is no run {run_id}", field="id")
    if current.status == target.value and target.is_terminal:
        return Conflict(f"run {run_id} is already {current.status.upper()}", field="id")
    if held_by is not None and current.lease_owner != held_by:
        return Conflict(f"run {run_id} is no longer leased to {held_by}", field="id")
    return Conflict(
        f"run {run_id} is {current.status.upper()} and cannot become {target.value.upper()}",
        field="id",
    )
