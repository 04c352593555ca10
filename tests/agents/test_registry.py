"""Agent kinds by name."""

from collections.abc import Mapping
from typing import Any

import pytest

from runql.agents.echo import EchoAgent, EchoKind
from runql.agents.protocol import (
    AgentReply,
    AgentRequest,
    InvalidConfig,
    Part,
    ReplyMessage,
    Turn,
)
from runql.agents.registry import AgentRegistry, UnknownKind, default_registry
from runql.agents.webhook import WebhookAgent
from runql.enums import ActorType


class ShoutAgent:
    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    async def run(self, request: AgentRequest) -> AgentReply:
        text = request.message.text.upper() + self.suffix
        return AgentReply(messages=(ReplyMessage((Part(text),)),))


class ShoutKind:
    """A third party's kind: not a subclass of anything runql has."""

    name = "shout"

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        suffix = config.get("suffix", "!")
        if set(config) - {"suffix"} or not isinstance(suffix, str):
            raise InvalidConfig("shout takes only suffix, a string")
        return {"suffix": suffix}

    def create(self, config: Mapping[str, Any]) -> ShoutAgent:
        return ShoutAgent(self.validate_config(config)["suffix"])


def make_request(text: str) -> AgentRequest:
    return AgentRequest(
        run_id="run_1",
        agent_id="agent_1",
        thread_id="thread_1",
        message=Turn(ActorType.USER, "Ada", (Part(text),)),
        history=(),
    )


def test_default_knows_the_built_in_kinds() -> None:
    registry = AgentRegistry.default()

    assert {"echo", "webhook"} <= set(registry.names)
    assert isinstance(registry.create("echo", {"delay_ms": 0}), EchoAgent)
    assert isinstance(registry.create("webhook", {"url": "http://127.0.0.1:1/x"}), WebhookAgent)
    assert registry.validate_config("webhook", {"url": "https://example.com/"})["retries"] == 2
    with pytest.raises(InvalidConfig, match="url"):
        registry.validate_config("webhook", {})


def test_unknown_kind_lists_the_known_ones() -> None:
    registry = AgentRegistry([EchoKind(), ShoutKind()])

    with pytest.raises(UnknownKind) as caught:
        registry.kind("telepathy")

    message = str(caught.value)
    assert "'telepathy'" in message
    assert "known kinds: echo, shout" in message
    with pytest.raises(UnknownKind, match="known kinds: echo, shout"):
        registry.create("telepathy", {})
    with pytest.raises(UnknownKind):
        registry.validate_config("telepathy", {})


def test_unknown_kind_from_default_names_echo_and_webhook() -> None:
    with pytest.raises(UnknownKind) as caught:
        AgentRegistry.default().kind("nope")
    assert "echo" in str(caught.value)
    assert "webhook" in str(caught.value)


async def test_third_party_kind_works() -> None:
    registry = AgentRegistry([ShoutKind()])

    assert registry.names == ["shout"]
    assert registry.validate_config("shout", {}) == {"suffix": "!"}
    with pytest.raises(InvalidConfig):
        registry.validate_config("shout", {"suffix": 3})
    reply = await registry.create("shout", {"suffix": "?"}).run(make_request("hello"))
    assert reply.messages[0].parts[0].text == "HELLO?"


def test_default_registry_is_read_once() -> None:
    assert default_registry() is default_registry()
    assert {"echo", "webhook"} <= set(default_registry().names)
