"""Batch reads: one statement for many keys, results in the order of the keys."""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import SQLModel

from runql.storage.tables import ActorRow, AttachedItemRow, MessageContentRow, MessageRow

Row = TypeVar("Row", bound=SQLModel)


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
    table: type[Row],
    parent: InstrumentedAttribute[Any],
    parent_ids: Sequence[str],
    *order_by: InstrumentedAttribute[Any],
) -> list[list[Row]]:
    statement = select(table).where(parent.in_(set(parent_ids))).order_by(*order_by)
    rows = (await session.execute(statement)).scalars().all()
    grouped: defaultdict[str, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[getattr(row, parent.key)].append(row)
    return [grouped.get(key, []) for key in parent_ids]


async def row_by_parent(
    session: AsyncSession,
    table: type[Row],
    parent: InstrumentedAttribute[Any],
    parent_ids: Sequence[str],
) -> list[Row | None]:
    rows = (await session.execute(select(table).where(parent.in_(set(parent_ids))))).scalars().all()
    by_parent = {getattr(row, parent.key): row for row in rows}
    return [by_parent.get(key) for key in parent_ids]


async def counts_by_parent(
    session: AsyncSession,
    parent: InstrumentedAttribute[Any],
    parent_ids: Sequence[str],
    *conditions: Any,
) -> list[int]:
    statement = (
        select(parent, func.count())
        .where(parent.in_(set(parent_ids)), *conditions)
        .group_by(parent)
    )
    counts: dict[str, int] = dict((await session.execute(statement)).all())
    return [counts.get(key, 0) for key in parent_ids]


async def messages_by_group(
    session: AsyncSession, group_ids: Sequence[str]
) -> list[list[tuple[MessageRow, ActorRow, MessageContentRow | None]]]:
    """Each group's messages in order, with the actor and content of each, in one statement."""
    statement = (
        select(MessageRow, ActorRow, MessageContentRow)
        .join(ActorRow, ActorRow.id == MessageRow.actor_id)  # type: ignore[arg-type]
        .outerjoin(MessageContentRow, MessageContentRow.message_item_id == MessageRow.id)  # type: ignore[arg-type]
        .where(MessageRow.message_group_id.in_(set(group_ids)))  # type: ignore[attr-defined]
        .order_by(MessageRow.message_group_id, MessageRow.position, MessageRow.id)  # type: ignore[arg-type]
    )
    grouped: defaultdict[str, list[tuple[MessageRow, ActorRow, MessageContentRow | None]]] = (
        defaultdict(list)
    )
    for message, actor, content in (await session.execute(statement)).all():
        grouped[message.message_group_id].append((message, actor, content))
    return [grouped.get(key, []) for key in group_ids]


async def items_by_parent(
    session: AsyncSession, parent: InstrumentedAttribute[Any], parent_ids: Sequence[str]
) -> list[list[tuple[AttachedItemRow, ActorRow | None]]]:
    """Each parent's attached items, oldest first, with the actor of each, in one statement."""
    statement = (
        select(AttachedItemRow, ActorRow)
        .outerjoin(ActorRow, ActorRow.id == AttachedItemRow.actor_id)  # type: ignore[arg-type]
        .where(parent.in_(set(parent_ids)))
        .order_by(parent, AttachedItemRow.created_at, AttachedItemRow.id)  # type: ignore[arg-type]
    )
    grouped: defaultdict[str, list[tuple[AttachedItemRow, ActorRow | None]]] = defaultdict(list)
    for item, actor in (await session.execute(statement)).all():
        grouped[getattr(item, parent.key)].append((item, actor))
    return [grouped.get(key, []) for key in parent_ids]
