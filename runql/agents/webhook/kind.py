"""The `webhook` agent kind: its configs are checked by WebhookConfig (and the egress policy),
and each agent encodes a run in the wire format, POSTs it with its own client and decodes the
answer."""

from collections.abc import Mapping
from typing import Any

from runql.agents.egress import EgressPolicy, EgressRefused
from runql.agents.protocol import AgentReply, AgentRequest, InvalidConfig
from runql.agents.webhook.client import WebhookClient
from runql.agents.webhook.config import WebhookConfig, check_config
from runql.agents.webhook.wire import decode_reply, encode_request


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
        content = await self._client.post(encode_request(request), request.run_id)
        return decode_reply(content)

    async def aclose(self) -> None:
        await self._client.aclose()


class WebhookKind:
    name = "webhook"

    def __init__(self, egress: EgressPolicy = EgressPolicy()) -> None:
        self.egress = egress

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return check_config(config).model_dump()

    async def check_egress(self, config: Mapping[str, Any]) -> None:
        try:
            await self.egress.check_url(config["url"])
        except EgressRefused as refused:
            raise InvalidConfig(f"url: {refused}") from None

    def create(self, config: Mapping[str, Any]) -> WebhookAgent:
        return WebhookAgent(check_config(config), self.egress)
