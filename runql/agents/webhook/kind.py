"""The `webhook` agent kind: its configs are checked by WebhookConfig (and the egress policy),
and each agent encodes a run in the wire format, POSTs it with its own client and decodes the
answer: one JSON reply, or events as they stream."""

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

from runql.agents.egress import EgressPolicy
from runql.agents.protocol import (
    AgentError,
    AgentReply,
    AgentRequest,
    StreamEvent,
    collect,
)
from runql.agents.webhook.client import EventStream, WebhookClient
from runql.agents.webhook.config import WebhookConfig, check_config
from runql.agents.webhook.wire import (
    EndEvent,
    ErrorEvent,
    decode_reply,
    encode_request,
    parse_event,
    reply_events,
)


class WebhookAgent:
    """One webhook agent's config and HTTP client; its runs share the client's connections
    until `aclose`."""

    def __init__(self, config: WebhookConfig, egress: EgressPolicy = EgressPolicy()) -> None:
        self.config = config
        self._client = WebhookClient(config, egress)

    def __repr__(self) -> str:
        # No URL or headers: they may hold credentials.
        return f"WebhookAgent(timeout_s={self.config.timeout_s!r}, retries={self.config.retries!r})"

    async def run(self, request: AgentRequest) -> AgentReply:
        answer = await self._client.post(encode_request(request), request.run_id)
        if isinstance(answer, bytes):
            return decode_reply(answer)
        return await collect(self._events(answer))

    async def stream(self, request: AgentRequest) -> AsyncIterator[StreamEvent]:
        """The answer's events as they come; a JSON answer as the events of its reply (see
        `reply_events`). Closing the iterator closes the HTTP stream."""
        answer = await self._client.post(encode_request(request), request.run_id)
        if isinstance(answer, bytes):
            for event in reply_events(decode_reply(answer)):
                yield event
            return
        async with aclosing(self._events(answer)) as events:
            async for event in events:
                yield event

    async def _events(self, answer: EventStream) -> AsyncGenerator[StreamEvent, None]:
        async with aclosing(answer):
            number = 0
            async for data in answer.events():
                number += 1
                event = parse_event(data, number)
                if isinstance(event, EndEvent):
                    return
                if isinstance(event, ErrorEvent):
                    raise self._client.reported(event.code, event.error().message)
                yield event
        raise AgentError(
            "stream_interrupted",
            f"The agent's stream ended without an end event (after {number} events).",
        )

    async def aclose(self) -> None:
        await self._client.aclose()


class WebhookKind:
    name = "webhook"

    def __init__(self, egress: EgressPolicy = EgressPolicy()) -> None:
        self.egress = egress

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return check_config(config).model_dump()

    async def check_egress(self, config: Mapping[str, Any]) -> None:
        await self.egress.check_config_url(config["url"], "url")

    def create(self, config: Mapping[str, Any]) -> WebhookAgent:
        return WebhookAgent(check_config(config), self.egress)
