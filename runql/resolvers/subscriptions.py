"""Subscription resolvers. Each one subscribes to the hub first and reads the run_events log
second, so an event committed between the two is read, not missed; and it reads by sequence
number, so no event is given twice. Once caught up, an event that a notice carries and that
comes right after the last one given is taken from the notice; anything else is read.

On a websocket, a subscriber that has caught up with the log joins the shared stream of its
operation (runql.fanout) at the event it has reached, and leaves the hub: from then on one
execution serves every subscriber of that operation."""

from collections.abc import AsyncGenerator, Awaitable, Callable

from sqlalchemy import inspect, select
from sqlmodel import col
from starlette.websockets import WebSocket
from strawberry import ID

from runql.bus.hub import Hub, Notice, Subscriber, SubscriberLagging, org_channel, run_channel
from runql.bus.shared import SharedReads
from runql.enums import RunEventType, RunStatus
from runql.errors import BadUserInput, NotFound
from runql.fanout.streams import Membership, joiner
from runql.ids import Kind, require
from runql.resolvers.context import Context, Info
from runql.resolvers.graph import checked_filter
from runql.schema.inputs import RunFilterInput
from runql.storage.tables import RunEventRow, RunRow

REREAD_SECONDS = 5.0
LAGGING_CLOSE_CODE = 1013  # "try again later"


def _hub(info: Info) -> Hub:
    hub = info.context.hub
    assert hub is not None, "subscriptions need the endpoint's hub"
    return hub


def _shared(context: Context) -> SharedReads:
    assert context.shared is not None, "subscriptions need the endpoint's shared reads"
    return context.shared


async def _run(context: Context, run_id: str) -> RunRow:
    """The run as it is now, from a read that starts after this call: a subscriber calls it
    once subscribed to the hub. Subscribers arriving together share a read."""
    context.refresh_loaders()
    run = await _shared(context).run_now(context.org_id, run_id)
    if run is None:
        raise NotFound(f"there is no run {run_id}", field="id")
    return run


async def _wait(context: Context, notices: Subscriber) -> list[Notice] | None:
    """Until something happens: the notices heard since; None when a while passed in silence
    or the feeder asked for a re-read (the caller then reads the log afresh). A subscriber too
    far behind is disconnected with a reason that says how to resume."""
    try:
        notice = await notices.next(within=REREAD_SECONDS)
        heard = [n for n in [notice, *notices.drain()] if n is not None]
        return heard if any(n.seq for n in heard) else None
    except SubscriberLagging as lagging:
        if context.lead is not None:  # a shared stream: the log has what the notices said
            notices.recover()
            return None
        if isinstance(context.request, WebSocket):
            await context.request.close(
                LAGGING_CLOSE_CODE,
                f"{lagging}; resubscribe with `after` set to the last sequence number you saw",
            )
        raise


def _carried(heard: list[Notice], last: int, dialect: str) -> list[RunEventRow]:
    """The events the notices carry that come right after `last`, without a gap: those need
    no read of the log. The first one missing (not carried, or a notice not yet arrived) and
    everything after it are read from the log."""
    carried = {n.seq: n.event for n in heard if n.event is not None and n.seq > last}
    found = []
    while (event := carried.get(last + 1)) is not None:
        found.append(event.row(dialect))
        last += 1
    return found


def _ends_run(event: RunEventRow) -> bool:
    return (
        event.type == RunEventType.STATUS_CHANGED and RunStatus(event.payload["status"]).is_terminal
    )


Join = Callable[[int], Membership | None]


async def _follow(
    context: Context,
    notices: Subscriber,
    run: RunRow,
    after: int,
    join: Join | None = None,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> AsyncGenerator[RunEventRow | Membership, None]:
    """The run's events after `after`, in order, up to the one that ends the run. `notices`
    must have been subscribed before `run` was read: everything committed since is announced,
    and everything before is at most `run.last_event_seq`. With `join`, once the log has no
    more, the subscriber joins its shared stream: that membership comes last. `settle` is
    awaited after each batch of events (what one read or one set of notices gave)."""
    shared, dialect = _shared(context), context.database.engine.dialect.name
    last, known, fresh = after, run.last_event_seq, False
    carried: list[RunEventRow] = []
    while not (RunStatus(run.status).is_terminal and last >= run.last_event_seq):
        if carried:
            events, carried = carried, []
        elif fresh or known > last:
            events = await shared.events_after(run.id, last, None if fresh else known)
        else:
            events = []
        for event in events:
            yield event
            last = event.seq
            if _ends_run(event):
                return
        if events and settle is not None:
            await settle()
        fresh = False
        if not events:
            if join is not None and (membership := join(last)) is not None:
                yield membership
                return
            heard = await _wait(context, notices)
            fresh = heard is None
            known = max([known, *(n.seq for n in heard or [])])
            carried = _carried(heard or [], last, dialect)


async def run_events(
    info: Info, run_id: ID, after: int | None = None
) -> AsyncGenerator[RunEventRow, None]:
    context = info.context
    require(run_id, Kind.RUN, "runId")
    if after is not None and after < 0:
        raise BadUserInput("after is a sequence number, 0 or more", field="after")
    lead, membership = context.lead, None
    async with _hub(info).subscribe([run_channel(run_id)]) as notices:
        run = await _run(context, run_id)
        start = lead.start if lead is not None else after or 0
        settle = lead.flush if lead is not None else None
        async for event in _follow(context, notices, run, start, _join(context), settle):
            if isinstance(event, Membership):
                membership = event
                continue
            if lead is not None:
                if lead.express(event, event.seq):  # built from its row, sent with its batch
                    continue
                await lead.flush()
                lead.seq = event.seq
            context.refresh_loaders()
            yield event
        if lead is not None:
            await lead.flush()  # the run's end
    if membership is not None:
        await membership.stay()


def _join(context: Context) -> Join | None:
    return None if context.lead is not None else joiner(context.streams, context.org_id)


def _as_of(run: RunRow, status: str) -> RunRow:
    """The run with the status it had at an event (its other fields as they are now)."""
    columns = {attr.key: getattr(run, attr.key) for attr in inspect(RunRow).column_attrs}
    return RunRow(**{**columns, "status": status})


async def run_status(info: Info, id: ID) -> AsyncGenerator[RunRow, None]:
    context = info.context
    require(id, Kind.RUN, "id")
    lead, membership = context.lead, None
    async with _hub(info).subscribe([run_channel(id)]) as notices:
        run = await _run(context, id)
        if lead is None:  # a shared stream starts where its first member is: after this
            yield run
        start = lead.start if lead is not None else run.last_event_seq
        async for event in _follow(context, notices, run, start, _join(context)):
            if isinstance(event, Membership):
                membership = event
            elif event.type == RunEventType.STATUS_CHANGED:
                now = await _shared(context).run(id, event.seq)
                assert now is not None
                if lead is not None:
                    lead.seq = event.seq
                context.refresh_loaders()
                yield _as_of(now, event.payload["status"])
    if membership is not None:
        await membership.stay()


async def _matching(
    context: Context, changes: list[Notice], filter: RunFilterInput | None
) -> list[RunRow]:
    """The changed runs that match, as they are after the changes. Dashboards woken by the same
    changes with the same filter share one read."""
    run_ids = list(dict.fromkeys(notice.run_id for notice in changes))
    run_filter = checked_filter(filter)

    async def read() -> list[RunRow]:
        statement = select(RunRow).where(
            col(RunRow.id).in_(run_ids),
            col(RunRow.org_id) == context.org_id,
            *(run_filter.conditions() if run_filter else []),
        )
        async with context.database.read() as session:
            found = {row.id: row for row in (await session.execute(statement)).scalars()}
        return [found[run_id] for run_id in run_ids if run_id in found]

    key = (context.org_id, repr(filter), tuple((n.run_id, n.seq) for n in changes))
    return await _shared(context).after_changes(key, read)


async def runs(info: Info, filter: RunFilterInput | None = None) -> AsyncGenerator[RunRow, None]:
    """Every change to the organization's runs that match the filter, new runs included: the
    run as it is after the change. Changes that arrive together come once per run."""
    context = info.context
    checked_filter(filter)
    async with _hub(info).subscribe([org_channel(context.org_id)]) as notices:
        while True:
            notice = await notices.next()
            assert notice is not None
            changes = [n for n in [notice, *notices.drain()] if n.run_id]
            for run in await _matching(context, changes, filter):
                context.refresh_loaders()
                yield run
