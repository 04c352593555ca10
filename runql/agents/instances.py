"""The agents an executor runs: one object per agent and version (its `updated_at`), shared by
that agent's runs, so a webhook's connections are reused. When an agent's version changes
(updateAgent) its runs get a new object, and the old one is closed once its last run has
ended; objects unused for IDLE_SECONDS are closed too, and `close` ends them all."""

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runql.agents.protocol import Agent, Closable
from runql.agents.registry import AgentRegistry

IDLE_SECONDS = 300.0


@dataclass(eq=False)
class _Held:
    agent: Agent
    version: object
    runs: int = 0
    last_used: float = field(default_factory=time.monotonic)


async def _close(agent: Agent) -> None:
    if isinstance(agent, Closable):
        await asyncio.shield(agent.aclose())


class AgentInstances:
    def __init__(self, registry: AgentRegistry) -> None:
        self.registry = registry
        self._current: dict[str, _Held] = {}
        self._retired: set[_Held] = set()
        self._taken: dict[int, _Held] = {}

    async def take(
        self, agent_id: str, version: object, kind: str, config: Mapping[str, Any]
    ) -> Agent:
        """The agent for one run, until `give_back`; raises what the kind's `create` raises
        (LookupError, InvalidConfig)."""
        held = self._current.get(agent_id)
        if held is None or held.version != version:
            held = _Held(self.registry.create(kind, config), version)
            replaced = self._current.get(agent_id)
            self._current[agent_id] = held
            if replaced is not None:
                await self._retire(replaced)
        held.runs += 1
        held.last_used = time.monotonic()
        self._taken[id(held.agent)] = held
        await self._close_idle()
        return held.agent

    async def give_back(self, agent: Agent) -> None:
        held = self._taken.get(id(agent))
        if held is None:  # closed by `close` meanwhile
            return
        held.runs -= 1
        held.last_used = time.monotonic()
        if held.runs == 0:
            del self._taken[id(agent)]
            if held in self._retired:
                self._retired.discard(held)
                await _close(held.agent)

    async def _retire(self, held: _Held) -> None:
        if held.runs:
            self._retired.add(held)
        else:
            await _close(held.agent)

    async def _close_idle(self) -> None:
        cutoff = time.monotonic() - IDLE_SECONDS
        idle = [
            agent_id
            for agent_id, held in self._current.items()
            if not held.runs and held.last_used < cutoff
        ]
        for agent_id in idle:
            await _close(self._current.pop(agent_id).agent)

    async def close(self) -> None:
        """Close every agent; runs still holding one are expected to have ended."""
        held = [*self._current.values(), *self._retired]
        self._current.clear()
        self._retired.clear()
        self._taken.clear()
        for item in held:
            await _close(item.agent)
