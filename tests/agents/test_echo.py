"""The echo agent: answers with what it was sent, after its delay."""

import time
from typing import Any

import pytest

from runql.agents.echo import MAX_DELAY_MS, EchoAgent, EchoKind
from runql.agents.protocol import (
    AgentReply,
    AgentRequest,
    Attachment,
    Cost,
    InvalidConfig,
    Part,
    ReplyMessage,
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
        ({"delay_ms": 1, "url": "x", "mode": 2}, r"^echo takes only delay_ms, not mode, url"),
    ],
)
def test_invalid_configs(config: dict[str, Any], pattern: str) -> None:
    with pytest.raises(InvalidConfig, match=pattern):
        EchoKind().validate_config(config)
    with pytest.raises(InvalidConfig, match=pattern):
        EchoKind().create(config)
