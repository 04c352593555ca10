"""The run_events log: appended in the transaction that makes the change, announced after commit."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from runql.enums import RunEventType
from runql.storage.tables import RunEventRow, RunRow
from runql.storage.types import utcnow

_UNCOMMITTED = "runql.uncommitted_events"


@dataclass(frozen=True, slots=True)
class RunEvent:
    run_id: str
    seq: int
    type: RunEventType
    payload: dict[str, Any]
    created_at: datetime


CommitListener = Callable[[RunEvent], None]


async def append_event(
    session: AsyncSession, run_id: str, type: RunEventType, payload: dict[str, Any]
) -> RunEvent:
    """Append the run's next event. The run's counter is bumped in the same statement that
    locks its row, so sequence numbers have no gaps and no duplicates."""
    bump = (
        update(RunRow)
        .where(col(RunRow.id) == run_id)
        .values(last_event_seq=col(RunRow.last_event_seq) + 1)
        .returning(col(RunRow.last_event_seq))
        .execution_options(synchronize_session=False)
    )
    seq = (await session.execute(bump)).scalar_one()
    event = RunEvent(run_id, seq, type, payload, utcnow())
    session.add(RunEventRow(run_id=run_id, seq=seq, type=type.value, payload=payload,
                            created_at=event.created_at))
    session.info.setdefault(_UNCOMMITTED, []).append(event)
    return event


def take_uncommitted(session: AsyncSession) -> list[RunEvent]:
    events: list[RunEvent] = session.info.pop(_UNCOMMITTED, [])
    return events
