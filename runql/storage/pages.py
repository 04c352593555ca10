"""Keyset pagination on (created_at, id): pages stay correct while rows are inserted."""

import base64
import binascii
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import SQLModel

Row = TypeVar("Row", bound=SQLModel)


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: str

    def encode(self) -> str:
        return self.encoded(self.created_at.isoformat(), self.id)

    @staticmethod
    def encoded(created_at: str, row_id: str) -> str:
        """The cursor of an instant already written as `isoformat` writes it."""
        raw = f"{created_at}|{row_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> "Cursor":
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            stamp, _, row_id = raw.partition("|")
            created_at = datetime.fromisoformat(stamp)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidCursor(f"{value!r} is not a cursor this server issued") from None
        if not row_id or created_at.tzinfo is None:
            raise InvalidCursor(f"{value!r} is not a cursor this server issued")
        return cls(created_at.astimezone(UTC), row_id)

    @classmethod
    def of(cls, row: Any) -> "Cursor":
        return cls(row.created_at, row.id)


@dataclass(frozen=True)
class PageRequest:
    """Which slice of an ordered list: `first` after a cursor, or `last` before one."""

    limit: int
    backward: bool = False
    cursor: Cursor | None = None
    newest_first: bool = True

    @property
    def walks_descending(self) -> bool:
        return self.newest_first != self.backward


@dataclass
class Page(Generic[Row]):
    rows: list[Row]
    has_next_page: bool
    has_previous_page: bool
    cursors: list[Cursor] = field(init=False)

    def __post_init__(self) -> None:
        self.cursors = [Cursor.of(row) for row in self.rows]


def beyond(
    columns: Any, cursor: Cursor, *, descending: bool, inclusive: bool = False
) -> ColumnElement[bool]:
    """The rows past the cursor in the walk's direction; `columns` has created_at and id (a
    row class, a table's `c` or a subquery's). Both executors page with it."""
    created, row_id = columns.created_at, columns.id
    if descending:
        tie = row_id <= cursor.id if inclusive else row_id < cursor.id
        return or_(created < cursor.created_at, and_(created == cursor.created_at, tie))
    tie = row_id >= cursor.id if inclusive else row_id > cursor.id
    return or_(created > cursor.created_at, and_(created == cursor.created_at, tie))


def ordering(columns: Any, *, descending: bool) -> tuple[Any, Any]:
    """The walk's order, on (created_at, id)."""
    if descending:
        return columns.created_at.desc(), columns.id.desc()
    return columns.created_at.asc(), columns.id.asc()


def behind(columns: Any, page: PageRequest) -> ColumnElement[bool] | None:
    """The rows before the page's cursor (None without one: then none are)."""
    if page.cursor is None:
        return None
    return beyond(columns, page.cursor, descending=not page.walks_descending, inclusive=True)


def page_conditions(columns: Any, conditions: Sequence[Any], page: PageRequest) -> list[Any]:
    """The conditions, and the rows past the page's cursor when it has one."""
    if page.cursor is None:
        return list(conditions)
    return [*conditions, beyond(columns, page.cursor, descending=page.walks_descending)]


def numbered_by_parent(columns: Any, parent: Any, page: PageRequest) -> Any:
    """Each row's position in its parent's walk: a window function over the parent column."""
    return func.row_number().over(
        partition_by=parent, order_by=ordering(columns, descending=page.walks_descending)
    )


RowT = TypeVar("RowT")


def split(
    rows: Sequence[RowT], page: PageRequest, *, rows_behind: bool
) -> tuple[list[RowT], bool, bool]:
    """A page's rows out of the `limit + 1` fetched, in the list's order, with whether there
    are rows after it and rows before it."""
    more = len(rows) > page.limit
    kept = list(rows[: page.limit])
    if page.backward:
        kept.reverse()
        return kept, rows_behind, more
    return kept, more, rows_behind


def _assemble(rows: Sequence[Row], page: PageRequest, *, rows_behind: bool) -> Page[Row]:
    kept, has_next, has_previous = split(rows, page, rows_behind=rows_behind)
    return Page(kept, has_next_page=has_next, has_previous_page=has_previous)


async def _any_behind(
    session: AsyncSession, table: Any, conditions: Sequence[Any], page: PageRequest
) -> bool:
    before = behind(table, page)
    if before is None:
        return False
    statement = select(table.id).where(*conditions, before).limit(1)
    return (await session.execute(statement)).first() is not None


async def fetch_page(
    session: AsyncSession, table: type[Row], conditions: Sequence[Any], page: PageRequest
) -> Page[Row]:
    t: Any = table
    statement = (
        select(table)
        .where(*page_conditions(t, conditions, page))
        .order_by(*ordering(t, descending=page.walks_descending))
        .limit(page.limit + 1)
    )
    rows = (await session.execute(statement)).scalars().all()
    return _assemble(rows, page, rows_behind=await _any_behind(session, t, conditions, page))


async def count_rows(
    session: AsyncSession, table: type[SQLModel], conditions: Sequence[Any]
) -> int:
    statement = select(func.count()).select_from(table).where(*conditions)
    return int((await session.execute(statement)).scalar_one())


async def fetch_pages_by_parent(
    session: AsyncSession,
    table: type[Row],
    parent_name: str,
    parent_ids: Sequence[str],
    conditions: Sequence[Any],
    page: PageRequest,
) -> list[Page[Row]]:
    """One page per parent in one statement (a window function numbers each parent's rows)."""
    t: Any = table
    parent = getattr(t, parent_name)
    where = page_conditions(t, [parent.in_(set(parent_ids)), *conditions], page)
    position = numbered_by_parent(t, parent, page)
    numbered = select(table, position.label("position_in_parent")).where(*where).subquery()
    row_alias: Any = aliased(table, numbered)
    statement = (
        select(row_alias)
        .where(numbered.c.position_in_parent <= page.limit + 1)
        .order_by(numbered.c[parent.key], numbered.c.position_in_parent)
    )
    grouped: defaultdict[str, list[Row]] = defaultdict(list)
    for row in (await session.execute(statement)).scalars().all():
        grouped[getattr(row, parent.key)].append(row)
    behind = await _parents_with_rows_behind(session, t, parent, parent_ids, conditions, page)
    return [_assemble(grouped.get(key, []), page, rows_behind=key in behind) for key in parent_ids]


async def _parents_with_rows_behind(
    session: AsyncSession,
    table: Any,
    parent: Any,
    parent_ids: Sequence[str],
    conditions: Sequence[Any],
    page: PageRequest,
) -> set[str]:
    before = behind(table, page)
    if before is None:
        return set()
    statement = select(parent).where(parent.in_(set(parent_ids)), *conditions, before).distinct()
    return set((await session.execute(statement)).scalars().all())
