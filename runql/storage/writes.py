"""Transactional writes."""

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel


def _columns(row: SQLModel) -> dict[str, Any]:
    mapper = inspect(type(row))
    return {
        attr.columns[0].key: getattr(row, attr.key)
        for attr in mapper.column_attrs
        if not (attr.columns[0].primary_key and getattr(row, attr.key) is None)
    }


async def insert_rows(session: AsyncSession, rows: Iterable[SQLModel]) -> None:
    """Insert new rows, parents before children, one statement per table."""
    by_table: defaultdict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_table[type(row).__table__].append(_columns(row))  # type: ignore[attr-defined]
    for table in SQLModel.metadata.sorted_tables:
        if table in by_table:
            await session.execute(insert(table), by_table[table])
