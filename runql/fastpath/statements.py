"""The SQL the fast path runs: Core statements over the tables, every one scoped to the
caller's organization, each selecting all of a table's columns in the table's order.

DateTime and JSON columns are selected without result processing (`type_coerce` to String
changes no SQL, only what SQLAlchemy does with the value): values.py formats them directly.
Keyset conditions and orderings are storage.pages's and filters storage.filters's, on the
tables' columns.

A statement may also read its rows' to-one relations (`Join`): each joined table's columns
follow the parent's, in the joins' order, null where the relation finds nothing.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Select,
    String,
    Table,
    and_,
    bindparam,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.sql.elements import KeyedColumnElement

from runql.storage import pages
from runql.storage.pages import PageRequest
from runql.storage.types import UTCDateTime

Columns = Any  # a table's or a subquery's column collection


def _raw(column: KeyedColumnElement[Any], like: Any) -> ColumnElement[Any]:
    if isinstance(like.type, UTCDateTime | JSON):
        return type_coerce(column, String).label(column.key)
    return column


def raw_columns(table: Table, columns: Columns | None = None) -> list[ColumnElement[Any]]:
    """All the table's columns, in order, from `columns` (the table's own by default)."""
    source = table.c if columns is None else columns
    return [_raw(source[column.key], column) for column in table.c]


@cache
def column_index(table: Table) -> dict[str, int]:
    return {column.key: index for index, column in enumerate(table.c)}


def _ids(name: str = "ids") -> Any:
    return bindparam(name, expanding=True)


def in_organization(table: Table) -> ColumnElement[bool]:
    """Every statement has it: its `org` parameter is the caller's organization."""
    return table.c.org_id == bindparam("org")


@dataclass(frozen=True, slots=True)
class Join:
    """A to-one relation read in its parent's statement, by a LEFT JOIN: the row of `table`
    whose `column` holds the parent row's `parent_column`, in the caller's organization. The
    column is unique (an id, or a unique key), so the join adds no rows."""

    table: Table
    column: str
    parent_column: str


Joins = tuple[Join, ...]


def joined(statement: Select[Any], parent: Columns, joins: Joins) -> Select[Any]:
    """The statement with each join's columns after its own, the parent's columns being
    `parent` (a table's or a subquery's)."""
    for number, join in enumerate(joins):
        other = join.table.alias(f"joined_{number}")
        statement = statement.add_columns(*raw_columns(join.table, other.c)).outerjoin(
            other,
            and_(
                other.c[join.column] == parent[join.parent_column],
                other.c.org_id == bindparam("org"),
            ),
        )
    return statement


@cache
def by_id(table: Table, joins: Joins = ()) -> Select[Any]:
    found = select(*raw_columns(table)).where(table.c.id.in_(_ids()), in_organization(table))
    return joined(found, table.c, joins)


@cache
def by_parent(table: Table, key: str, order: tuple[str, ...], joins: Joins = ()) -> Select[Any]:
    found = (
        select(*raw_columns(table))
        .where(table.c[key].in_(_ids()), in_organization(table))
        .order_by(*(table.c[name] for name in order))
    )
    return joined(found, table.c, joins)


@cache
def writers(table: Table, wrote: str, triggered: str, joins: Joins = ()) -> Select[Any]:
    """Rows whose `wrote` column holds one of the ids, or whose `triggered` one does."""
    found = select(*raw_columns(table)).where(
        or_(table.c[wrote].in_(_ids()), table.c[triggered].in_(_ids("triggers"))),
        in_organization(table),
    )
    return joined(found, table.c, joins)


def page(
    table: Table, where: Sequence[ColumnElement[bool]], request: PageRequest, joins: Joins = ()
) -> Select[Any]:
    found = (
        select(*raw_columns(table))
        .where(*pages.page_conditions(table.c, where, request))
        .order_by(*pages.ordering(table.c, descending=request.walks_descending))
        .limit(request.limit + 1)
    )
    return joined(found, table.c, joins)


def any_behind(
    table: Table, where: Sequence[ColumnElement[bool]], request: PageRequest
) -> Select[Any] | None:
    """Whether rows precede the page (None: no cursor, so none do)."""
    behind = pages.behind(table.c, request)
    return None if behind is None else select(table.c.id).where(*where, behind).limit(1)


def count(table: Table, where: Sequence[ColumnElement[bool]]) -> Select[Any]:
    return select(func.count()).select_from(table).where(*where)


def pages_by_parent(
    table: Table,
    key: str,
    where: Sequence[ColumnElement[bool]],
    request: PageRequest,
    joins: Joins = (),
) -> Select[Any]:
    """One page per parent in one statement: each parent's rows numbered by a window function
    (storage.pages's, which the standard loaders run on ORM rows; these are the raw columns)."""
    conditions = pages.page_conditions(table.c, [table.c[key].in_(_ids()), *where], request)
    position = pages.numbered_by_parent(table.c, table.c[key], request)
    numbered = select(*table.c, position.label("position_in_parent")).where(*conditions).subquery()
    found = (
        select(*raw_columns(table, numbered.c))
        .where(numbered.c.position_in_parent <= request.limit + 1)
        .order_by(numbered.c[key], numbered.c.position_in_parent)
    )
    return joined(found, numbered.c, joins)


def parents_with_rows_behind(
    table: Table, key: str, where: Sequence[ColumnElement[bool]], request: PageRequest
) -> Select[Any] | None:
    behind = pages.behind(table.c, request)
    if behind is None:
        return None
    return select(table.c[key]).where(table.c[key].in_(_ids()), *where, behind).distinct()


def counts_by_parent(table: Table, key: str, where: Sequence[ColumnElement[bool]]) -> Select[Any]:
    return (
        select(table.c[key], func.count())
        .where(table.c[key].in_(_ids()), *where)
        .group_by(table.c[key])
    )
