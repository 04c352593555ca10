"""The echo agent: answers with what it was sent, after its delay."""

import time
from typing import Any

import pytest

from runql.agents.echo import MAX_DELAY_MS, EchoAgent, EchoKind, words
from runql.agents.protocol import (
    AgentReply,
    AgentRequest,
    Attachment,
    AttachmentAdded,
    Cost,
    InvalidConfig,
    MessageStarted,
    Part,
    ReplyMessage,
    Streams,
    TextDelta,
    Turn,
)
from runql.enums import ActorType, AttachmentType, ContentPartType


def make_request() -> AgentRequest:
    parts = (Part("Hello"), Part("x = 1", ContentPartType.CODE))
    attachments = (
        Attachment(AttachmentType.IMAGE, url="https://example.com/a.png", caption="a picture"),
    )
    return AgentRequest(
        run_id="run_1",
        agent_id="agent_1",
        thread_id="thread_1",
        message=Turn(ActorType.USER, "Ada", parts, attachments),
        history=(Turn(ActorType.USER, "Ada", (Part("earlier"),)),),
    )


async def test_echo_replies_with_the_parts_and_attachments_it_got() -> None:
    request = make_request()

    reply = await EchoKind().create({"delay_ms": 0}).run(request)

    assert reply == AgentReply(
        messages=(ReplyMessage(request.message.parts, request.message.attachments),),
        cost=Cost(0.0, "credits"),
    )


async def test_echo_waits_for_its_delay() -> None:
    started = time.monotonic()
    await EchoAgent(150).run(make_request())
    elapsed = time.monotonic() - started
    assert 0.14 <= elapsed < 1.0


async def test_echo_without_delay_is_quick() -> None:
    started = time.monotonic()
    await EchoAgent(0).run(make_request())
    assert time.monotonic() - started < 0.1


def test_default_delay() -> None:
    assert EchoKind().validate_config({}) == {"delay_ms": 500}
    assert EchoKind().create({}).delay_ms == 500


@pytest.mark.parametrize("delay", [0, 1, 500, MAX_DELAY_MS])
def test_valid_delays(delay: int) -> None:
    assert EchoKind().validate_config({"delay_ms": delay}) == {"delay_ms": delay}


@pytest.mark.parametrize(
    ("config", "pattern"),
    [
        ({"delay_ms": -1}, r"^delay_ms must be a whole number from 0 to 60000"),
        ({"delay_ms": MAX_DELAY_MS + 1}, r"^delay_ms must be"),
        ({"delay_ms": 1.5}, r"^delay_ms must be"),
        ({"delay_ms": "100"}, r"^delay_ms must be"),
        ({"delay_ms": True}, r"^delay_ms must be"),
        ({"delay_ms": None}, r"^delay_ms must be"),
        (
            {"delay_ms": 1, "url": "x", "mode": 2},
            r"^echo takes only delay_ms and stream_delay_ms, not mode, url",
        ),
        ({"stream_delay_ms": -5}, r"^stream_delay_ms must be a whole number from 0 to 60000"),
        ({"stream_delay_ms": "fast"}, r"^stream_delay_ms must be"),
    ],
)
def test_invalid_configs(config: dict[str, Any], pattern: str) -> None:
    with pytest.raises(InvalidConfig, match=pattern):
        EchoKind().validate_config(config)
    with pytest.raises(InvalidConfig, match=pattern):
        EchoKind().create(config)


async def test_streaming_echo_streams_each_part_word_by_word() -> None:
    request = make_request()
    agent = EchoKind().create({"delay_ms": 0, "stream_delay_ms": 1})
    assert isinstance(agent, Streams)
    events = [event async for event in agent.stream(request)]
    assert events == [
        MessageStarted(ContentPartType.TEXT),
        TextDelta("Hello"),
        MessageStarted(ContentPartType.CODE),
        TextDelta("x "),
        TextDelta("= "),
        TextDelta("1"),
        AttachmentAdded(request.message.attachments[0]),
        Cost(0.0, "credits"),
    ]


def test_echo_streams_only_when_asked() -> None:
    assert not isinstance(EchoKind().create({"delay_ms": 0}), Streams)
    assert EchoKind().validate_config({"stream_delay_ms": 40}) == {
        "delay_ms": 500,
        "stream_delay_ms": 40,
    }


@pytest.mark.parametrize("text", ["", " ", "a", "  lead and trail  ", "tabs\tand\nlines\n\n"])
def test_the_streamed_words_join_back_to_the_text(text: str) -> None:
    assert "".join(words(text)) == text
