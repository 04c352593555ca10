"""A test-only streaming agent kind: its agents yield what a script says, so a test controls
each event of a stream and when it comes; and reads of what a streamed run stored."""

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from runql.agents.protocol import AgentReply, AgentRequest, StreamEvent, TextDelta
from runql.enums import RunEventType
from runql.storage.database import Database
from runql.storage.tables import (
    ContentPartRow,
    MessageContentRow,
    MessageGroupRow,
    MessageRow,
    RunEventRow,
)

Script = Callable[[AgentRequest], AsyncIterator[StreamEvent]]


class ScriptedStream:
    def __init__(self, script: Script) -> None:
        self.script = script

    async def run(self, request: AgentRequest) -> AgentReply:
        raise AssertionError("a streaming agent is run through stream()")

    def stream(self, request: AgentRequest) -> AsyncIterator[StreamEvent]:
        return self.script(request)


class ScriptedStreamKind:
    name = "streamed"

    def __init__(self, script: Script) -> None:
        self.script = script

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return dict(config)

    def create(self, config: Mapping[str, Any]) -> ScriptedStream:
        return ScriptedStream(self.script)


async def words(request: AgentRequest) -> AsyncIterator[StreamEvent]:
    """The request's text, a character at a time, with no pause."""
    for character in request.message.text:
        yield TextDelta(character)


async def stored_messages(database: Database, group_id: str) -> list[tuple[str, str, str]]:
    """(id, type, text) of each message of the group, in order."""
    async with database.read() as session:
        rows = (
            await session.execute(
                select(col(MessageRow.id), col(MessageRow.type), col(ContentPartRow.text))
                .join(
                    MessageContentRow, col(MessageContentRow.message_item_id) == col(MessageRow.id)
                )
                .join(ContentPartRow, col(ContentPartRow.content_id) == col(MessageContentRow.id))
                .where(col(MessageRow.message_group_id) == group_id)
                .order_by(col(MessageRow.position))
            )
        ).all()
    return [(row[0], row[1], row[2]) for row in rows]


async def group_status(database: Database, group_id: str) -> str:
    async with database.read() as session:
        group = await session.get(MessageGroupRow, group_id)
    assert group is not None
    return group.status


async def deltas(database: Database, run_id: str) -> list[dict[str, Any]]:
    """The payloads of the run's MESSAGE_DELTA events, in order."""
    async with database.read() as session:
        rows = (
            await session.execute(
                select(col(RunEventRow.payload))
                .where(
                    col(RunEventRow.run_id) == run_id,
                    col(RunEventRow.type) == RunEventType.MESSAGE_DELTA.value,
                )
                .order_by(col(RunEventRow.seq))
            )
        ).scalars()
    return list(rows)
