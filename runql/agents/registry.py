"""Agent kinds by name: the built-in ones and those installed under `runql.agents`."""

import logging
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from runql.agents.echo import EchoKind
from runql.agents.egress import EgressPolicy
from runql.agents.openai import OpenAIKind
from runql.agents.protocol import Agent, AgentKind, InvalidConfig, ReachesOut
from runql.agents.webhook import WebhookKind

ENTRY_POINT_GROUP = "runql.agents"

log = logging.getLogger("runql.agents")


class UnknownKind(LookupError):
    pass


class AgentRegistry:
    def __init__(self, kinds: Iterable[AgentKind]) -> None:
        self._kinds = {kind.name: kind for kind in kinds}

    @classmethod
    def default(cls, egress: EgressPolicy = EgressPolicy()) -> "AgentRegistry":
        """The built-in kinds, then those packages declare under `runql.agents`. An entry
        point that fails to load, or would replace a built-in kind, is logged and skipped.
        Built-in kinds that connect out follow `egress`."""
        kinds: list[AgentKind] = [EchoKind(), WebhookKind(egress), OpenAIKind(egress)]
        taken = {kind.name for kind in kinds}
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = point.load()
                kind = loaded() if isinstance(loaded, type) else loaded
            except Exception:
                log.exception("agent kind %r (%s) failed to load; skipped", point.name, point.value)
                continue
            if kind.name in taken:
                log.warning(
                    "agent kind %r from %s is already taken; skipped", kind.name, point.value
                )
                continue
            taken.add(kind.name)
            kinds.append(kind)
        return cls(kinds)

    @property
    def names(self) -> list[str]:
        return sorted(self._kinds)

    def kind(self, name: str) -> AgentKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownKind(
                f"unknown agent kind {name!r}; known kinds: {', '.join(self.names)}"
            ) from None

    def validate_config(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        return self.kind(name).validate_config(config)

    async def check_config(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """The validated config, its addresses checked too when the kind connects out."""
        kind = self.kind(name)
        checked = kind.validate_config(config)
        if isinstance(kind, ReachesOut):
            await kind.check_egress(checked)
        return checked

    def create(self, name: str, config: Mapping[str, Any]) -> Agent:
        return self.kind(name).create(config)


@cache
def default_registry(egress: EgressPolicy = EgressPolicy()) -> AgentRegistry:
    """The process's registry for `egress` (the settings' policy): entry points are read once."""
    return AgentRegistry.default(egress)


__all__ = ["AgentRegistry", "InvalidConfig", "UnknownKind", "default_registry"]
