"""Batch reads: one statement for many keys, results in the order of the keys."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

Row = TypeVar("Row", bound=SQLModel)


@dataclass(frozen=True, slots=True)
class With:
    """A row read beside each child, by a LEFT JOIN: the `row` whose `column` holds the child's
    `child_column` (a to-one link, or a child's one child; either column is unique)."""

    row: type[SQLModel]
    column: str
    child_column: str


async def rows_by_id(
    session: AsyncSession, table: type[Row], ids: Sequence[str], org_id: str
) -> list[Row | None]:
    """The rows with these ids in the organization: another's rows are as good as missing."""
    columns: Any = table
    statement = select(table).where(columns.id.in_(set(ids)), columns.org_id == org_id)
    rows = (await session.execute(statement)).scalars().all()
    by_id = {row.id: row for row in rows}  # type: ignore[attr-defined]
    return [by_id.get(key) for key in ids]


async def rows_by_parent(
    session: AsyncSession,
    table: type[SQLModel],
    parent: str,
    parent_ids: Sequence[str],
    order: Sequence[str] = (),
    joined: Sequence[With] = (),
) -> list[list[tuple[Any, ...]]]:
    """Each parent's rows whose `parent` column holds its id, in `order`, each a tuple of the
    row and what `joined` finds beside it (None where nothing is), in one statement."""
    columns: Any = table
    statement = select(table, *(found.row for found in joined))
    for found in joined:
        other: Any = found.row
        statement = statement.outerjoin(
            other, getattr(other, found.column) == getattr(columns, found.child_column)
        )
    statement = statement.where(getattr(columns, parent).in_(set(parent_ids))).order_by(
        *(getattr(columns, name) for name in order)
    )
    grouped: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)
    key = getattr(columns, parent).key
    for row in (await session.execute(statement)).all():
        grouped[getattr(row[0], key)].append(tuple(row))
    return [grouped.get(key, []) for key in parent_ids]


async def counts_by_parent(
    session: AsyncSession,
    table: type[SQLModel],
    parent: str,
    parent_ids: Sequence[str],
    *conditions: Any,
) -> list[int]:
    column = getattr(table, parent)
    statement = (
        select(column, func.count())
        .where(column.in_(set(parent_ids)), *conditions)
        .group_by(column)
    )
    counts: dict[str, int] = dict((await session.execute(statement)).all())
    return [counts.get(key, 0) for key in parent_ids]


async def writers(
    session: AsyncSession, table: type[Row], wrote: str, triggered: str, ids: Sequence[str]
) -> list[Row | None]:
    """For each id, the row whose `wrote` column holds it, else the one whose `triggered` does."""
    columns: Any = table
    wanted = set(ids)
    statement = select(table).where(
        or_(getattr(columns, wrote).in_(wanted), getattr(columns, triggered).in_(wanted))
    )
    rows = (await session.execute(statement)).scalars().all()
    by_wrote = {getattr(row, wrote): row for row in rows}
    by_triggered = {getattr(row, triggered): row for row in rows}
    return [by_wrote.get(key) or by_triggered.get(key) for key in ids]
