"""The `openai` agent kind: configs are checked by OpenAIConfig (and the egress policy); its
agents (`runql.agents.openai.agent`) are made on the SDK, which is imported only then: it takes
a second or more to import, which a process that runs no such agent need not pay."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runql.agents.egress import EgressPolicy
from runql.agents.openai.config import check_config

if TYPE_CHECKING:
    from runql.agents.openai.agent import OpenAIAgent


class OpenAIKind:
    name = "openai"

    def __init__(self, egress: EgressPolicy = EgressPolicy()) -> None:
        self.egress = egress

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return check_config(config).model_dump()

    async def check_egress(self, config: Mapping[str, Any]) -> None:
        await self.egress.check_config_url(config["base_url"], "base_url")

    def create(self, config: Mapping[str, Any]) -> "OpenAIAgent":
        from runql.agents.openai.agent import OpenAIAgent

        return OpenAIAgent(check_config(config), self.egress)
