"""`collect`: the reply a stream adds up to, for `run()` of a streaming agent."""

from collections.abc import AsyncIterator

import pytest

from runql.agents.protocol import (
    AgentError,
    AgentReply,
    AttachedValue,
    Attachment,
    AttachmentAdded,
    Cost,
    MessageStarted,
    Part,
    ReplyMessage,
    StreamEvent,
    TextDelta,
    collect,
)
from runql.enums import AttachmentType, ContentPartType

LINK = Attachment(AttachmentType.LINK, url="https://example.com")


async def _stream(*events: StreamEvent, error: AgentError | None = None, closed: list[bool]):
    try:
        for event in events:
            yield event
        if error is not None:
            raise error
    finally:
        closed.append(True)


async def test_messages_are_their_deltas_joined() -> None:
    closed: list[bool] = []
    stream: AsyncIterator[StreamEvent] = _stream(
        TextDelta("a"),  # no message open: a text message opens
        TextDelta("b"),
        MessageStarted(ContentPartType.MARKDOWN),
        TextDelta("**c**"),
        AttachmentAdded(LINK),
        MessageStarted(),
        AttachmentAdded(LINK),  # attachments only: no part
        AttachedValue("k", [1]),
        Cost(1.0, "usd"),
        Cost(2.0, "usd"),
        closed=closed,
    )
    assert await collect(stream) == AgentReply(
        messages=(
            ReplyMessage((Part("ab"),)),
            ReplyMessage((Part("**c**", ContentPartType.MARKDOWN),), (LINK,)),
            ReplyMessage((), (LINK,)),
        ),
        attached_items=(AttachedValue("k", [1]),),
        cost=Cost(2.0, "usd"),
    )
    assert closed == [True]


async def test_an_error_is_raised_and_the_stream_closed() -> None:
    closed: list[bool] = []
    failing = _stream(TextDelta("par"), error=AgentError("boom", "It broke."), closed=closed)
    with pytest.raises(AgentError, match="It broke"):
        await collect(failing)
    assert closed == [True]
