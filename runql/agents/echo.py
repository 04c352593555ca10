"""The demo agent: answers with what it was sent, after a delay so progress can be seen."""

import asyncio
from collections.abc import Mapping
from typing import Any

from runql.agents.protocol import (
    AgentReply,
    AgentRequest,
    Cost,
    InvalidConfig,
    ReplyMessage,
)

MAX_DELAY_MS = 60_000


class EchoAgent:
    def __init__(self, delay_ms: int) -> None:
        self.delay_ms = delay_ms

    async def run(self, request: AgentRequest) -> AgentReply:
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        message = ReplyMessage(request.message.parts, request.message.attachments)
        return AgentReply(messages=(message,), cost=Cost(0.0, "credits"))


class EchoKind:
    name = "echo"

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(config) - {"delay_ms"}
        if unknown:
            raise InvalidConfig(f"echo takes only delay_ms, not {', '.join(sorted(unknown))}")
        delay = config.get("delay_ms", 500)
        if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= MAX_DELAY_MS:
            raise InvalidConfig(f"delay_ms must be a whole number from 0 to {MAX_DELAY_MS}")
        return {"delay_ms": delay}

    def create(self, config: Mapping[str, Any]) -> EchoAgent:
        return EchoAgent(self.validate_config(config)["delay_ms"])
