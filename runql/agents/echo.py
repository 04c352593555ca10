"""The demo agent: answers with what it was sent, after a delay so progress can be seen. With
`stream_delay_ms`, it streams its answer word by word, that many milliseconds apart, so an
agent can be watched typing."""

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from runql.agents.protocol import (
    AgentReply,
    AgentRequest,
    AttachmentAdded,
    Cost,
    InvalidConfig,
    MessageStarted,
    ReplyMessage,
    StreamEvent,
    TextDelta,
)

MAX_DELAY_MS = 60_000
_WORDS = re.compile(r"\S+\s*|\s+")  # each word with the spaces after it: they join back exactly


def words(text: str) -> list[str]:
    """The pieces echo streams: `"".join(words(text)) == text`."""
    return _WORDS.findall(text)


class EchoAgent:
    def __init__(self, delay_ms: int) -> None:
        self.delay_ms = delay_ms

    async def run(self, request: AgentRequest) -> AgentReply:
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        message = ReplyMessage(request.message.parts, request.message.attachments)
        return AgentReply(messages=(message,), cost=Cost(0.0, "credits"))


class StreamingEchoAgent(EchoAgent):
    """Echo that streams: after `delay_ms`, each part of the message as a message of its own,
    a word every `stream_delay_ms`; then the attachments and the cost."""

    def __init__(self, delay_ms: int, stream_delay_ms: int) -> None:
        super().__init__(delay_ms)
        self.stream_delay_ms = stream_delay_ms

    async def stream(self, request: AgentRequest) -> AsyncIterator[StreamEvent]:
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        for part in request.message.parts:
            yield MessageStarted(part.type)
            for index, word in enumerate(words(part.text)):
                if index:
                    await asyncio.sleep(self.stream_delay_ms / 1000)
                yield TextDelta(word)
        for attachment in request.message.attachments:
            yield AttachmentAdded(attachment)
        yield Cost(0.0, "credits")


def _delay(config: Mapping[str, Any], name: str, default: int) -> int:
    delay = config.get(name, default)
    if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= MAX_DELAY_MS:
        raise InvalidConfig(f"{name} must be a whole number from 0 to {MAX_DELAY_MS}")
    return delay


class EchoKind:
    name = "echo"

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(config) - {"delay_ms", "stream_delay_ms"}
        if unknown:
            raise InvalidConfig(
                f"echo takes only delay_ms and stream_delay_ms, not {', '.join(sorted(unknown))}"
            )
        checked = {"delay_ms": _delay(config, "delay_ms", 500)}
        if "stream_delay_ms" in config:
            checked["stream_delay_ms"] = _delay(config, "stream_delay_ms", 0)
        return checked

    def create(self, config: Mapping[str, Any]) -> EchoAgent:
        checked = self.validate_config(config)
        if "stream_delay_ms" in checked:
            return StreamingEchoAgent(checked["delay_ms"], checked["stream_delay_ms"])
        return EchoAgent(checked["delay_ms"])
