"""SQL statements per request: one listener on the engine counts each statement (BEGIN aside,
as `counting_statements` does) into the record of the request that ran it."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from runql.operations.requests import CURRENT_REQUEST


def _count(_conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
    record = CURRENT_REQUEST.get()  # (current_request(), without its call: per statement)
    if record is not None and not statement.startswith("BEGIN"):
        record.statements += 1


def count_statements(engine: AsyncEngine) -> None:
    """Idempotent: an engine shared by several apps (tests) is counted once."""
    if not event.contains(engine.sync_engine, "after_cursor_execute", _count):
        event.listen(engine.sync_engine, "after_cursor_execute", _count)
