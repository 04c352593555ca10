"""Managing agents: create, update, archive. Configs are checked by the agent's kind."""

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from runql.agents.protocol import InvalidConfig
from runql.agents.registry import AgentRegistry, UnknownKind
from runql.enums import ActorType
from runql.errors import BadUserInput, NotFound
from runql.ids import Kind, new_id, require
from runql.storage.database import Database
from runql.storage.tables import ActorRow, AgentRow
from runql.storage.types import utcnow
from runql.storage.writes import insert_rows
from runql.text import check_text, check_value

MAX_NAME = 200


def _name(value: str) -> str:
    name = str(check_text(value, "name")).strip()
    if not 0 < len(name) <= MAX_NAME:
        raise BadUserInput(f"an agent's name has 1 to {MAX_NAME} characters", field="name")
    return name


async def _config(registry: AgentRegistry, kind: str, config: Any) -> dict[str, Any]:
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise BadUserInput("config must be a JSON object", field="config")
    check_value(config, "config")
    try:
        return await registry.check_config(kind, config)
    except UnknownKind as error:
        raise BadUserInput(str(error.args[0]), field="kind") from None
    except InvalidConfig as error:
        raise BadUserInput(f"{kind} config: {error}", field="config") from None


async def create_agent(
    database: Database,
    registry: AgentRegistry,
    org_id: str,
    *,
    name: str,
    kind: str,
    config: Any,
) -> AgentRow:
    agent = AgentRow(
        id=new_id(Kind.AGENT),
        org_id=org_id,
        name=_name(name),
        kind=kind,
        config=await _config(registry, kind, config),
    )
    actor = ActorRow(
        id=new_id(Kind.ACTOR),
        org_id=org_id,
        name=agent.name,
        type=ActorType.AGENT.value,
        metadata_={"agent_id": agent.id},
    )
    agent.actor_id = actor.id
    async with database.write() as session:
        await insert_rows(session, [actor, agent])
    return agent


async def _agent(session: AsyncSession, org_id: str, agent_id: str) -> AgentRow:
    require(agent_id, Kind.AGENT, "id")
    agent = await session.get(AgentRow, agent_id)
    if agent is None or agent.org_id != org_id:
        raise NotFound(f"there is no agent {agent_id}", field="id")
    return agent


async def update_agent(
    database: Database,
    registry: AgentRegistry,
    org_id: str,
    agent_id: str,
    *,
    name: str | None = None,
    config: Any = None,
    config_given: bool = False,
) -> AgentRow:
    checked: dict[str, Any] | None = None
    if config_given:
        # Checked before the write: checking may wait for DNS, which no transaction should.
        async with database.read() as session:
            kind = (await _agent(session, org_id, agent_id)).kind
        checked = await _config(registry, kind, config)
    async with database.write() as session:
        agent = await _agent(session, org_id, agent_id)
        if name is not None:
            agent.name = _name(name)
        if checked is not None:
            agent.config = checked
        agent.updated_at = utcnow()
    return agent


async def archive_agent(database: Database, org_id: str, agent_id: str) -> AgentRow:
    """Archive the agent: it takes no new runs. Archiving twice changes nothing."""
    async with database.write() as session:
        agent = await _agent(session, org_id, agent_id)
        if agent.archived_at is None:
            agent.archived_at = agent.updated_at = utcnow()
    return agent
