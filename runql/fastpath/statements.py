"""The SQL the fast path runs: Core statements over the tables, every one scoped to the
caller's organization, each selecting the columns the operation reads of its table (Layouts:
`id` first, then the others in the order the planner asked for them), so a row is a tuple of
those. A document that selects `{ id status }` of a run reads two of its columns, not 21.

DateTime and JSON columns are selected without result processing (`type_coerce` to String
changes no SQL, only what SQLAlchemy does with the value): values.py formats them directly.
Keyset conditions and orderings are storage.pages's and filters storage.filters's, on the
tables' columns.

A statement may also read its rows' to-one relations (`Join`): each joined table's columns
follow the parent's, in the joins' order, null where the relation finds nothing.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    ColumnElement,
    Executable,
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
from runql.storage.raw import CUSTOM_PLAN
from runql.storage.types import UTCDateTime

Columns = Any  # a table's or a subquery's column collection


def _raw(column: KeyedColumnElement[Any], like: Any) -> ColumnElement[Any]:
    if isinstance(like.type, UTCDateTime | JSON):
        return type_coerce(column, String).label(column.key)
    return column


Names = tuple[str, ...]  # the columns a statement selects of a table, in the rows' order
IDENTITY = 0  # every layout's first column: the row's id


def raw_columns(
    table: Table, names: Names, columns: Columns | None = None
) -> list[ColumnElement[Any]]:
    """The named columns of the table, in that order, from `columns` (the table's own by
    default)."""
    source = table.c if columns is None else columns
    return [_raw(source[name], table.c[name]) for name in names]


class Layouts:
    """The columns one operation reads of each table, and where each is in the rows. The
    planner runs twice: the first pass asks for every column it reads (`index` records them,
    `id` first), the second builds the plan on the layouts so found (`fixed`), where each
    index is final and the statements select exactly those columns."""

    def __init__(self, fixed: dict[Table, Names] | None = None) -> None:
        self._fixed = fixed
        self._found: dict[Table, dict[str, None]] = {}

    def _names(self, table: Table) -> dict[str, None]:
        found = self._found.get(table)
        if found is None:
            found = self._found[table] = {"id": None}
        return found

    def index(self, table: Table, name: str) -> int:
        """Where the column is in the table's rows."""
        if self._fixed is not None:
            return self._fixed[table].index(name)
        names = self._names(table)
        if name not in table.c:
            raise KeyError(f"{table.name} has no column {name}")
        names.setdefault(name)
        return list(names).index(name)

    def columns(self, table: Table) -> Names:
        """The table's columns as its statements select them."""
        if self._fixed is not None:
            return self._fixed[table]
        return tuple(self._names(table))

    def fixed(self) -> "Layouts":
        """The layouts found, final."""
        return Layouts({table: tuple(names) for table, names in self._found.items()})


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
    names: Names  # the joined table's columns, as its own statements select them


Joins = tuple[Join, ...]


def joined(statement: Select[Any], parent: Columns, joins: Joins) -> Select[Any]:
    """The statement with each join's columns after its own, the parent's columns being
    `parent` (a table's or a subquery's)."""
    for number, join in enumerate(joins):
        other = join.table.alias(f"joined_{number}")
        statement = statement.add_columns(*raw_columns(join.table, join.names, other.c)).outerjoin(
            other,
            and_(
                other.c[join.column] == parent[join.parent_column],
                other.c.org_id == bindparam("org"),
            ),
        )
    return statement


S = TypeVar("S", bound=Executable)


def planned_apart(statement: S, values_matter: bool) -> S:
    """The statement, marked to be planned for its own values on PostgreSQL where they
    matter (storage.raw.CUSTOM_PLAN): a page or count with a filter or a cursor, which a
    generic plan may walk the organization's every row for. Reads by key keep generic plans."""
    return statement.execution_options(**{CUSTOM_PLAN: True}) if values_matter else statement


STATEMENTS = 1024  # statements kept by their shape (the columns come from clients' documents)


@lru_cache(maxsize=STATEMENTS)
def by_id(table: Table, names: Names, joins: Joins = ()) -> Select[Any]:
    found = select(*raw_columns(table, names)).where(table.c.id.in_(_ids()), in_organization(table))
    return joined(found, table.c, joins)


@lru_cache(maxsize=STATEMENTS)
def by_parent(
    table: Table, names: Names, key: str, order: tuple[str, ...], joins: Joins = ()
) -> Select[Any]:
    found = (
        select(*raw_columns(table, names))
        .where(table.c[key].in_(_ids()), in_organization(table))
        .order_by(*(table.c[name] for name in order))
    )
    return joined(found, table.c, joins)


@lru_cache(maxsize=STATEMENTS)
def writers(
    table: Table, names: Names, wrote: str, triggered: str, joins: Joins = ()
) -> Select[Any]:
    """Rows whose `wrote` column holds one of the ids, or whose `triggered` one does."""
    found = select(*raw_columns(table, names)).where(
        or_(table.c[wrote].in_(_ids()), table.c[triggered].in_(_ids("triggers"))),
        in_organization(table),
    )
    return joined(found, table.c, joins)


def page(
    table: Table,
    names: Names,
    where: Sequence[ColumnElement[bool]],
    request: PageRequest,
    joins: Joins = (),
) -> Select[Any]:
    found = (
        select(*raw_columns(table, names))
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
    names: Names,
    key: str,
    where: Sequence[ColumnElement[bool]],
    request: PageRequest,
    joins: Joins = (),
) -> Select[Any]:
    """One page per parent in one statement: each parent's rows numbered by a window function
    (storage.pages's, which the standard loaders run on ORM rows; these are the raw columns)."""
    conditions = pages.page_conditions(table.c, [table.c[key].in_(_ids()), *where], request)
    position = pages.numbered_by_parent(table.c, table.c[key], request)
    inner = (table.c[name] for name in dict.fromkeys((*names, key)))
    numbered = select(*inner, position.label("position_in_parent")).where(*conditions).subquery()
    found = (
        select(*raw_columns(table, names, numbered.c))
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
