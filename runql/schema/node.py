"""The Relay `Node` interface and the connection types every list uses."""

from typing import Any, Generic, TypeVar

import strawberry

from runql.resolvers.graph import connection_total

T = TypeVar("T")


@strawberry.interface(
    description="An object with an id. Every id starts with its kind (run_, agent_, thread_, "
    "mgrp_, msg_, act_, cnt_, part_, att_, itm_, err_), so `node(id:)` finds any of them."
)
class Node:
    id: strawberry.ID = strawberry.field(description="The object's id, as REST shows it too.")


def rows_of(table: type[Any]) -> Any:
    """An `is_type_of` check: which stored rows a GraphQL object type stands for."""

    def is_type_of(obj: Any, _info: Any) -> bool:
        return isinstance(obj, table)

    return staticmethod(is_type_of)


@strawberry.type(description="Where a page sits in its list, Relay style.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow the last edge.")
    has_previous_page: bool = strawberry.field(description="More items precede the first edge.")
    start_cursor: str | None = strawberry.field(description="The cursor of the first edge.")
    end_cursor: str | None = strawberry.field(description="The cursor of the last edge.")


@strawberry.type(description="One item of a page, with the cursor that points at it.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Pass as `after` or `before` to page from here.")
    node: T


@strawberry.type(
    description="A page of a list. Cursors are keyset cursors: they stay correct while items "
    "are added. `first`/`last` default to 20 and are capped at 100."
)
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int = strawberry.field(
        resolver=connection_total, description="How many items match, over every page."
    )
