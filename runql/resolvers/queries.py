"""Root query resolvers: single objects by id, lists as connections, any node by its id."""

import asyncio
from typing import Any

from strawberry import ID

from runql.errors import BadUserInput
from runql.ids import Kind, require
from runql.limits import MAX_NODES
from runql.resolvers.batching import BatchLoader
from runql.resolvers.context import Info
from runql.resolvers.graph import checked_filter
from runql.resolvers.loaders import Loaders
from runql.resolvers.pagination import Connection, connection, page_request
from runql.schema.inputs import CreatedOrder, RunFilterInput
from runql.storage import pages
from runql.storage.tables import (
    ActorRow,
    AgentRow,
    MessageGroupRow,
    RunRow,
    ThreadRow,
)


def _node_loaders(loaders: Loaders) -> dict[Kind, BatchLoader[str, Any]]:
    return {
        Kind.RUN: loaders.run,
        Kind.AGENT: loaders.agent,
        Kind.THREAD: loaders.thread,
        Kind.MESSAGE_GROUP: loaders.message_group,
        Kind.MESSAGE: loaders.message,
        Kind.ACTOR: loaders.actor,
        Kind.CONTENT: loaders.content,
        Kind.PART: loaders.part,
        Kind.ATTACHMENT: loaders.attachment,
        Kind.ITEM: loaders.attached_item,
        Kind.ERROR: loaders.run_error,
    }


async def _one(info: Info, id: str, kind: Kind) -> Any:
    require(id, kind, "id")
    return await _node_loaders(info.context.loaders)[kind].load(id)


async def run(info: Info, id: ID) -> RunRow | None:
    return await _one(info, id, Kind.RUN)  # type: ignore[no-any-return]


async def agent(info: Info, id: ID) -> AgentRow | None:
    return await _one(info, id, Kind.AGENT)  # type: ignore[no-any-return]


async def thread(info: Info, id: ID) -> ThreadRow | None:
    return await _one(info, id, Kind.THREAD)  # type: ignore[no-any-return]


async def message_group(info: Info, id: ID) -> MessageGroupRow | None:
    return await _one(info, id, Kind.MESSAGE_GROUP)  # type: ignore[no-any-return]


async def actor(info: Info, id: ID) -> ActorRow | None:
    return await _one(info, id, Kind.ACTOR)  # type: ignore[no-any-return]


async def node(info: Info, id: ID) -> Any:
    kind = require(id, None, "id")
    return await _load_or_none(_node_loaders(info.context.loaders).get(kind), id)


async def nodes(info: Info, ids: list[ID]) -> list[Any]:
    if len(ids) > MAX_NODES:
        raise BadUserInput(f"nodes takes at most {MAX_NODES} ids, got {len(ids)}", field="ids")
    by_kind = _node_loaders(info.context.loaders)
    kinds = [require(value, None, f"ids[{index}]") for index, value in enumerate(ids)]
    return list(
        await asyncio.gather(
            *(
                _load_or_none(by_kind.get(kind), value)
                for kind, value in zip(kinds, ids, strict=True)
            )
        )
    )


async def _load_or_none(loader: BatchLoader[str, Any] | None, key: str) -> Any:
    return None if loader is None else await loader.load(key)


async def _list(
    info: Info,
    table: Any,
    conditions: list[Any],
    order_by: CreatedOrder,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[Any]:
    page = page_request(
        first=first, after=after, last=last, before=before, newest_first=order_by.newest_first
    )
    database = info.context.database
    conditions = [table.org_id == info.context.org_id, *conditions]

    async def count() -> int:
        async with database.read() as session:
            return await pages.count_rows(session, table, conditions)

    async with database.read() as session:
        result = await pages.fetch_page(session, table, conditions, page)
    return connection(result, count)


async def runs(
    info: Info,
    filter: RunFilterInput | None = None,
    order_by: CreatedOrder = CreatedOrder.CREATED_AT_DESC,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[Any]:
    run_filter = checked_filter(filter)
    conditions = run_filter.conditions() if run_filter else []
    return await _list(info, RunRow, conditions, order_by, first, after, last, before)


async def agents(
    info: Info,
    order_by: CreatedOrder = CreatedOrder.CREATED_AT_DESC,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[Any]:
    return await _list(info, AgentRow, [], order_by, first, after, last, before)


async def threads(
    info: Info,
    agent_id: list[ID] | None = None,
    order_by: CreatedOrder = CreatedOrder.CREATED_AT_DESC,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[Any]:
    for index, value in enumerate(agent_id or ()):
        require(value, Kind.AGENT, f"agentId[{index}]")
    conditions = [ThreadRow.agent_id.in_(agent_id)] if agent_id is not None else []  # type: ignore[attr-defined]
    return await _list(info, ThreadRow, conditions, order_by, first, after, last, before)
