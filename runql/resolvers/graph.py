"""Resolvers of the run graph's links, made from its declaration (runql.storage.graph): each
one loads through this request's loaders. They take and return rows; the schema's types say
which GraphQL type a row stands for."""

from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, Protocol

from strawberry.utils.str_converters import to_camel_case

from runql.agents.secrets import shown_config
from runql.errors import BadUserInput
from runql.ids import Kind, require
from runql.resolvers.context import Info
from runql.resolvers.pagination import Connection, Listing, connection
from runql.storage.filters import InvalidFilter, RunFilter
from runql.storage.graph import OBJECTS, Paged, ToMany, ToOne, WriterOf
from runql.storage.tables import AgentRow

Resolver = Callable[..., Awaitable[Any]]


def agent_config(root: AgentRow) -> dict[str, Any]:
    return shown_config(root.config)


def link(owner: str, name: str) -> Resolver:
    """The resolver of `owner`'s relation `name`: the object it links to, its children, or
    (MessageGroup.run) the run that wrote it."""
    relation = OBJECTS[owner].relations[name]
    if isinstance(relation, ToOne):
        column, target = relation.column, relation.target

        async def one(root: Any, info: Info) -> Any:
            key = getattr(root, column)
            return None if key is None else await info.context.loaders.by_id(target).load(key)

        return one
    if isinstance(relation, ToMany):
        children = relation

        async def many(root: Any, info: Info) -> Any:
            return await info.context.loaders.children(children).load(root.id)

        return many
    if isinstance(relation, WriterOf):
        writer = relation

        async def written(root: Any, info: Info) -> Any:
            return await info.context.loaders.writer(writer).load(root.id)

        return written
    raise TypeError(f"{owner}.{name} is a list: see page_of")


def composite(owner: str, name: str) -> Callable[[Any], Any]:
    """The resolver of `owner`'s composite value `name`: its fields, or None."""
    made = OBJECTS[owner].composites[name]
    columns, fields, make = made.columns, made.fields, made.make

    def value(root: Any) -> Any:
        found = make(*(getattr(root, column) for column in columns))
        return None if found is None else SimpleNamespace(**dict(zip(fields, found, strict=True)))

    return value


class FilterArgument(Protocol):
    """A filter as a transport reads it (GraphQL's RunFilter input)."""

    def to_filter(self) -> RunFilter: ...


def checked_filter(filter: FilterArgument | None) -> RunFilter | None:
    if filter is None:
        return None
    run_filter = filter.to_filter()
    for values, kind, name in (
        (run_filter.ids, Kind.RUN, "id"),
        (run_filter.agent_ids, Kind.AGENT, "agentId"),
        (run_filter.thread_ids, Kind.THREAD, "threadId"),
    ):
        for index, value in enumerate(values or ()):
            require(value, kind, f"filter.{name}[{index}]")
    try:
        run_filter.check(lambda name: f"filter.{to_camel_case(name)}")
    except InvalidFilter as error:
        raise BadUserInput(str(error), field=error.field) from None
    return run_filter


def page_of(owner: str, name: str) -> Callable[[Any, Info, Listing], Awaitable[Connection[Any]]]:
    """The loader of `owner`'s list `name`: a page of it, with its count when asked for."""
    relation = OBJECTS[owner].relations[name]
    assert isinstance(relation, Paged)

    async def load(root: Any, info: Info, listing: Listing) -> Connection[Any]:
        loaders = info.context.loaders
        run_filter = listing.run_filter
        result = await loaders.pages(relation).load((root.id, run_filter, listing.page))
        return connection(result, lambda: loaders.counts(relation).load((root.id, run_filter)))

    return load


async def connection_total(root: Connection[Any]) -> int:
    return await root.count()
