"""What other processes hear of a run event: its ids, and the event itself when it fits in a
NOTIFY; a carried event is the row the log gives back."""

from dataclasses import replace

import pytest
from sqlalchemy import select, text

from runql.enums import RunEventType
from runql.storage.database import Database
from runql.storage.events import (
    MAX_CARRIED,
    PROCESS,
    Announcement,
    RunEvent,
    announcement_sql,
    append_event,
    events_after,
)
from runql.storage.tables import DEFAULT_ORG_ID, RunRow
from runql.storage.types import utcnow


def _event(payload: dict[str, object]) -> RunEvent:
    return RunEvent(DEFAULT_ORG_ID, "run_1", 7, RunEventType.MESSAGE_DELTA, payload, utcnow())


def test_a_small_event_travels_with_its_announcement() -> None:
    event = _event({"message_id": "msg_1", "offset": 3, "text": "a | b"})
    heard = Announcement.parse(event.announcement())
    assert (heard.origin, heard.org_id, heard.run_id, heard.seq) == (
        PROCESS,
        DEFAULT_ORG_ID,
        "run_1",
        7,
    )
    assert heard.event == event


def test_an_event_too_large_for_a_notify_is_announced_by_its_ids_only() -> None:
    event = _event({"text": "x" * MAX_CARRIED})
    announced = event.announcement()
    assert len(announced.encode()) < 8000
    heard = Announcement.parse(announced)
    assert heard.seq == 7
    assert heard.event is None


async def test_a_carried_event_is_the_row_the_log_gives_back(demo_database: Database) -> None:
    database = demo_database
    async with database.read() as session:
        run = (await session.execute(select(RunRow).limit(1))).scalars().one()
    payload = {"text": "hé", "message_id": "msg_1", "offset": 0, "nested": {"zz": 1, "a": [2]}}
    async with database.write() as session:
        event = await append_event(session, run.id, RunEventType.MESSAGE_DELTA, payload)
    async with database.read() as session:
        *_earlier, stored = await events_after(session, run.id, event.seq - 1)
    heard = Announcement.parse(event.announcement()).event
    assert heard is not None
    carried = heard.row(database.engine.dialect.name)
    for field in ("run_id", "seq", "type", "payload", "created_at"):
        assert getattr(carried, field) == getattr(stored, field), field
    assert list(carried.payload) == list(stored.payload)  # the same key order, too
    assert list(carried.payload["nested"]) == list(stored.payload["nested"])


async def test_a_statement_that_numbers_its_events_announces_them_as_python_does(
    database: Database,
) -> None:
    """announcement_sql over RunEvent.around_seq gives announcement(), whatever the seq's
    digits, on both sides of MAX_CARRIED and for a payload JSON cannot encode."""
    if database.is_sqlite:
        pytest.skip("NOTIFY is PostgreSQL's")
    statement = text(
        "SELECT " + announcement_sql(":head", "CAST(:seq AS integer)", ":tail", ":rest")
    )
    fixed = len(_event({"text": ""}).announcement().encode())
    events = [
        replace(_event({"text": "x" * size}), seq=seq)
        for size in (0, MAX_CARRIED - fixed - 2, MAX_CARRIED - fixed - 1, MAX_CARRIED - fixed)
        for seq in (7, 70, 7_000_000)
    ]
    events.append(_event({"text": float("nan"), "set": {1}}))
    async with database.read() as session:
        for event in events:
            head, tail, rest = event.around_seq()
            params = {"head": head, "seq": event.seq, "tail": tail, "rest": rest}
            assert (await session.execute(statement, params)).scalar_one() == event.announcement()
