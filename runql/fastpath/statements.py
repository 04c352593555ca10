"""The SQL the fast path runs: Core statements over the tables, every one scoped to the
caller's organization, each selecting all of a table's columns in the table's order.

DateTime and JSON columns are selected without result processing (`type_coerce` to String
changes no SQL, only what SQLAlchemy does with the value): values.py formats them directly.
Keyset conditions and orderings are storage.pages's, on (created_at, id).

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

from runql.storage.filters import RunFilter
from runql.storage.pages import Cursor, PageRequest
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
def runs_of_groups(table: Table, joins: Joins = ()) -> Select[Any]:
    """Runs that wrote, or were triggered by, the groups."""
    found = select(*raw_columns(table)).where(
        or_(
            table.c.message_group_id.in_(_ids()),
            table.c.trigger_message_group_id.in_(_ids("triggers")),
        ),
        in_organization(table),
    )
    return joined(found, table.c, joins)


def beyond(
    columns: Columns, cursor: Cursor, *, descending: bool, inclusive: bool = False
) -> ColumnElement[bool]:
    """As storage.pages._beyond: the rows past the cursor in the walk's direction."""
    created, row_id = columns.created_at, columns.id
    if descending:
        tie = row_id <= cursor.id if inclusive else row_id < cursor.id
        return or_(created < cursor.created_at, and_(created == cursor.created_at, tie))
    tie = row_id >= cursor.id if inclusive else row_id > cursor.id
    return or_(created > cursor.created_at, and_(created == cursor.created_at, tie))


def ordering(columns: Columns, *, descending: bool) -> tuple[Any, Any]:
    if descending:
        return columns.created_at.desc(), columns.id.desc()
    return columns.created_at.asc(), columns.id.asc()


def run_conditions(table: Table, run_filter: RunFilter | None) -> list[ColumnElement[bool]]:
    """As RunFilter.conditions, on the runs table's columns."""
    if run_filter is None:
        return []
    found: list[ColumnElement[bool]] = []
    members = (
        (run_filter.ids, "id"),
        (run_filter.statuses, "status"),
        (run_filter.agent_ids, "agent_id"),
        (run_filter.thread_ids, "thread_id"),
    )
    for values, name in members:
        if values is not None:
            found.append(table.c[name].in_(values))
    ranges = (
        (run_filter.created_at, "created_at"),
        (run_filter.started_at, "started_at"),
        (run_filter.completed_at, "completed_at"),
    )
    for time_range, name in ranges:
        if time_range is not None:
            found.extend(time_range.conditions(table.c[name]))
    return found


def page(
    table: Table, where: Sequence[ColumnElement[bool]], request: PageRequest, joins: Joins = ()
) -> Select[Any]:
    conditions = list(where)
    if request.cursor is not None:
        conditions.append(beyond(table.c, request.cursor, descending=request.walks_descending))
    found = (
        select(*raw_columns(table))
        .where(*conditions)
        .order_by(*ordering(table.c, descending=request.walks_descending))
        .limit(request.limit + 1)
    )
    return joined(found, table.c, joins)


def any_behind(
    table: Table, where: Sequence[ColumnElement[bool]], request: PageRequest
) -> Select[Any] | None:
    """Whether rows precede the page (None: no cursor, so none do)."""
    if request.cursor is None:
        return None
    behind = beyond(
        table.c, request.cursor, descending=not request.walks_descending, inclusive=True
    )
    return select(table.c.id).where(*where, behind).limit(1)


def count(table: Table, where: Sequence[ColumnElement[bool]]) -> Select[Any]:
    return select(func.count()).select_from(table).where(*where)


def pages_by_parent(
    table: Table,
    key: str,
    where: Sequence[ColumnElement[bool]],
    request: PageRequest,
    joins: Joins = (),
) -> Select[Any]:
    """One page per parent in one statement, as storage.pages.fetch_pages_by_parent."""
    conditions = [table.c[key].in_(_ids()), *where]
    if request.cursor is not None:
        conditions.append(beyond(table.c, request.cursor, descending=request.walks_descending))
    position = func.row_number().over(
        partition_by=table.c[key], order_by=ordering(table.c, descending=request.walks_descending)
    )
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
    if request.cursor is None:
        return None
    behind = beyond(
        table.c, request.cursor, descending=not request.walks_descending, inclusive=True
    )
    return select(table.c[key]).where(table.c[key].in_(_ids()), *where, behind).distinct()


def counts_by_parent(table: Table, key: str, where: Sequence[ColumnElement[bool]]) -> Select[Any]:
    return (
        select(table.c[key], func.count())
        .where(table.c[key].in_(_ids()), *where)
        .group_by(table.c[key])
    )
