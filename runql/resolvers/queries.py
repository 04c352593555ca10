"""Root query resolvers: single objects by id, lists as connections, any node by its id."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from strawberry import ID

from runql.errors import BadUserInput
from runql.ids import Kind, require
from runql.limits import MAX_NODES
from runql.resolvers.batching import BatchLoader
from runql.resolvers.context import Info
from runql.resolvers.pagination import Connection, Listing, connection
from runql.storage import pages
from runql.storage.graph import BY_KIND, OBJECTS
from runql.storage.tables import (
    ActorRow,
    AgentRow,
    MessageGroupRow,
    RunRow,
    ThreadRow,
)


def _loader(info: Info, kind: Kind) -> BatchLoader[str, Any] | None:
    found = BY_KIND.get(kind)
    return None if found is None else info.context.loaders.by_id(found.name)


async def _one(info: Info, id: str, kind: Kind) -> Any:
    require(id, kind, "id")
    return await info.context.loaders.by_id(BY_KIND[kind].name).load(id)


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
    return await _load_or_none(_loader(info, kind), id)


def node_kinds(ids: Sequence[str]) -> list[Kind]:
    """The kind of each id `nodes(ids:)` is given: at most MAX_NODES ids, each well formed."""
    if len(ids) > MAX_NODES:
        raise BadUserInput(f"nodes takes at most {MAX_NODES} ids, got {len(ids)}", field="ids")
    return [require(value, None, f"ids[{index}]") for index, value in enumerate(ids)]


async def nodes(info: Info, ids: list[ID]) -> list[Any]:
    kinds = node_kinds(ids)
    return list(
        await asyncio.gather(
            *(
                _load_or_none(_loader(info, kind), value)
                for kind, value in zip(kinds, ids, strict=True)
            )
        )
    )


async def _load_or_none(loader: BatchLoader[str, Any] | None, key: str) -> Any:
    return None if loader is None else await loader.load(key)


def listed(name: str) -> Callable[[Any, Info, Listing], Awaitable[Connection[Any]]]:
    """The loader of a root list of the objects `name` (runs, agents, threads): a page of the
    caller's organization's, with its count when asked for."""
    table: Any = OBJECTS[name].row

    async def load(_root: Any, info: Info, listing: Listing) -> Connection[Any]:
        database = info.context.database
        conditions = [table.org_id == info.context.org_id, *listing.conditions(table)]

        async def count() -> int:
            async with database.read() as session:
                return await pages.count_rows(session, table, conditions)

        async with database.read() as session:
            result = await pages.fetch_page(session, table, conditions, listing.page)
        return connection(result, count)

    return load
