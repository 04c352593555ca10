"""Keyset pagination on (created_at, id): pages stay correct while rows are inserted."""

import base64
import binascii
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlmodel import SQLModel

Row = TypeVar("Row", bound=SQLModel)


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
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


def _beyond(table: Any, cursor: Cursor, *, descending: bool, inclusive: bool = False) -> Any:
    created, row_id = table.created_at, table.id
    if descending:
        tie = row_id <= cursor.id if inclusive else row_id < cursor.id
        return or_(created < cursor.created_at, and_(created == cursor.created_at, tie))
    tie = row_id >= cursor.id if inclusive else row_id > cursor.id
    return or_(created > cursor.created_at, and_(created == cursor.created_at, tie))


def _ordering(table: Any, *, descending: bool) -> tuple[Any, Any]:
    if descending:
        return table.created_at.desc(), table.id.desc()
    return table.created_at.asc(), table.id.asc()


def _assemble(rows: Sequence[Row], page: PageRequest, *, rows_behind: bool) -> Page[Row]:
    more = len(rows) > page.limit
    kept = list(rows[: page.limit])
    if page.backward:
        kept.reverse()
        return Page(kept, has_next_page=rows_behind, has_previous_page=more)
    return Page(kept, has_next_page=more, has_previous_page=rows_behind)


async def _any_behind(
    session: AsyncSession, table: Any, conditions: Sequence[Any], page: PageRequest
) -> bool:
    if page.cursor is None:
        return False
    behind = _beyond(table, page.cursor, descending=not page.walks_descending, inclusive=True)
    statement = select(table.id).where(*conditions, behind).limit(1)
    return (await session.execute(statement)).first() is not None


async def fetch_page(
    session: AsyncSession, table: type[Row], conditions: Sequence[Any], page: PageRequest
) -> Page[Row]:
    t: Any = table
    where = list(conditions)
    if page.cursor is not None:
        where.append(_beyond(t, page.cursor, descending=page.walks_descending))
    statement = (
        select(table)
        .where(*where)
        .order_by(*_ordering(t, descending=page.walks_descending))
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
    parent: InstrumentedAttribute[Any],
    parent_ids: Sequence[str],
    conditions: Sequence[Any],
    page: PageRequest,
) -> list[Page[Row]]:
    """One page per parent in one statement (a window function numbers each parent's rows)."""
    t: Any = table
    where = [parent.in_(set(parent_ids)), *conditions]
    if page.cursor is not None:
        where.append(_beyond(t, page.cursor, descending=page.walks_descending))
    position = func.row_number().over(
        partition_by=parent, order_by=_ordering(t, descending=page.walks_descending)
    )
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
    parent: InstrumentedAttribute[Any],
    parent_ids: Sequence[str],
    conditions: Sequence[Any],
    page: PageRequest,
) -> set[str]:
    if page.cursor is None:
        return set()
    behind = _beyond(table, page.cursor, descending=not page.walks_descending, inclusive=True)
    statement = select(parent).where(parent.in_(set(parent_ids)), *conditions, behind).distinct()
    return set((await session.execute(statement)).scalars().all())
