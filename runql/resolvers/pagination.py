"""Relay connections: arguments in, keyset pages out."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from runql.errors import BadUserInput
from runql.limits import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from runql.storage.filters import RunFilter
from runql.storage.pages import Cursor, InvalidCursor, Page, PageRequest

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Edge(Generic[T]):
    cursor: str
    node: T


@dataclass(frozen=True, slots=True)
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@dataclass(frozen=True, slots=True)
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: Callable[[], Awaitable[int]]


@dataclass(frozen=True)
class Listing:
    """A list's checked arguments: the page, and the filter of runs or the agents of threads."""

    page: PageRequest
    run_filter: RunFilter | None = None
    agent_ids: tuple[str, ...] | None = None

    def conditions(self, columns: Any) -> list[Any]:
        """The SQL the arguments select by, on the listed table's `columns` (a row class, or a
        table's column collection)."""
        found = self.run_filter.conditions(columns) if self.run_filter is not None else []
        if self.agent_ids is not None:
            found.append(columns.agent_id.in_(self.agent_ids))
        return found


def page_request(
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    newest_first: bool,
) -> PageRequest:
    if first is not None and last is not None:
        raise BadUserInput("give first or last, not both", field="last")
    if after is not None and before is not None:
        raise BadUserInput("give after or before, not both", field="before")
    if last is not None and after is not None:
        raise BadUserInput("last pages backward: use it with before, not after", field="after")
    if first is not None and before is not None:
        raise BadUserInput("first pages forward: use it with after, not before", field="before")
    backward = last is not None or before is not None
    size, name = (last, "last") if backward else (first, "first")
    limit = DEFAULT_PAGE_SIZE if size is None else size
    if limit < 0:
        raise BadUserInput(f"{name} must not be negative, got {limit}", field=name)
    if limit > MAX_PAGE_SIZE:
        raise BadUserInput(
            f"{name} is capped at {MAX_PAGE_SIZE} (got {limit}): page with cursors instead",
            field=name,
        )
    raw_cursor, cursor_name = (before, "before") if backward else (after, "after")
    try:
        cursor = Cursor.decode(raw_cursor) if raw_cursor is not None else None
    except InvalidCursor as error:
        raise BadUserInput(str(error), field=cursor_name) from None
    return PageRequest(limit=limit, backward=backward, cursor=cursor, newest_first=newest_first)


def connection(page: Page[Any], count: Callable[[], Awaitable[int]]) -> Connection[Any]:
    cursors = [cursor.encode() for cursor in page.cursors]
    edges = [Edge(cursor, row) for cursor, row in zip(cursors, page.rows, strict=True)]
    info = PageInfo(
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )
    return Connection(edges, info, count)
