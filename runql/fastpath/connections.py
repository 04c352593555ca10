"""Connections: the root lists (runs, agents, threads) and the lists of an object (Thread.runs,
Agent.runs, Thread.messageGroups), with keyset cursors, `pageInfo`, and `totalCount` counted
only when it is selected. Arguments are checked by the schema's own checks
(runql.schema.arguments), so a refused argument is the same error."""

from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import FieldNode, GraphQLField
from sqlalchemy import Select, Table

from runql.errors import RunqlError
from runql.fastpath import statements
from runql.fastpath.build import Builder, Path
from runql.fastpath.execution import Execution, Row
from runql.fastpath.plan import Build, Folded, ObjectPlan, distinct_folds
from runql.fastpath.values import cursor
from runql.resolvers.pagination import Listing
from runql.schema.arguments import Check
from runql.storage.pages import PageRequest, split


@dataclass(frozen=True, slots=True)
class FoundPage:
    rows: list[Row]
    has_next_page: bool
    has_previous_page: bool


def assemble(rows: Sequence[Row], page: PageRequest, *, rows_behind: bool) -> FoundPage:
    """The page of raw rows (storage.pages.split's, which also makes the standard pages)."""
    return FoundPage(*split(rows, page, rows_behind=rows_behind))


@dataclass(frozen=True, slots=True)
class ListStatements:
    """A list's statements: its page, whether rows precede it, its count."""

    page: Select[Any]
    behind: Select[Any] | None
    count: Select[Any]


STATEMENT_SETS = 256  # lists' statements kept, by their arguments; least recently used go


@lru_cache(maxsize=STATEMENT_SETS)
def root_statements(
    table: Table, names: statements.Names, listing: Listing, joins: statements.Joins
) -> ListStatements:
    """Of a root list: made once for the same arguments (building a Select costs more than
    the rest of its execution's Python)."""
    conditions = listing.conditions(table.c)
    where = [statements.in_organization(table), *conditions]
    behind = statements.any_behind(table, where, listing.page)
    apart = _values_matter(listing, conditions)
    return ListStatements(
        statements.planned_apart(statements.page(table, names, where, listing.page, joins), apart),
        None if behind is None else statements.planned_apart(behind, apart),
        statements.planned_apart(statements.count(table, where), bool(conditions)),
    )


def _values_matter(listing: Listing, conditions: list[Any]) -> bool:
    """Whether a list's page is planned for its values (statements.planned_apart): with a
    filter, or after or before a cursor."""
    return bool(conditions) or listing.page.cursor is not None


@lru_cache(maxsize=STATEMENT_SETS)
def statements_of(
    table: Table,
    names: statements.Names,
    parent: str,
    listing: Listing,
    joins: statements.Joins,
) -> ListStatements:
    """Of the lists of many parents (a page each), made once for the same arguments too."""
    conditions = listing.conditions(table.c)
    where = [statements.in_organization(table), *conditions]
    request = listing.page
    behind = statements.parents_with_rows_behind(table, parent, where, request)
    apart = _values_matter(listing, conditions)
    return ListStatements(
        statements.planned_apart(
            statements.pages_by_parent(table, names, parent, where, request, joins), apart
        ),
        None if behind is None else statements.planned_apart(behind, apart),
        statements.planned_apart(
            statements.counts_by_parent(table, parent, where), bool(conditions)
        ),
    )


# What a selection of a connection, an edge or a page info asks for: (key, what, plan).
Selected = tuple[tuple[str, str, Any], ...]


@dataclass(frozen=True)
class Shape:
    """The selection of a connection: edges (cursor, node), pageInfo, totalCount, typenames."""

    fields: Selected
    created: int  # the rows' created_at column
    identity: int  # the rows' id column
    _edges: dict[str, Build] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        edges = {
            key: self._edge(selected) for key, what, selected in self.fields if what == "edges"
        }
        object.__setattr__(self, "_edges", edges)

    def nodes(self) -> list[ObjectPlan]:
        return [
            plan
            for _, what, edge in self.fields
            if what == "edges"
            for _, part, plan in edge
            if part == "node"
        ]

    @property
    def counts(self) -> bool:
        return any(what == "totalCount" for _, what, _ in self.fields)

    def below(self) -> frozenset[Hashable]:
        return frozenset().union(*(plan.below() for plan in self.nodes()))

    def folds(self) -> tuple[Folded, ...]:
        return distinct_folds(folded for plan in self.nodes() for folded in plan.folds)

    def _cursor(self, row: Row) -> str:
        return cursor(row[self.created], row[self.identity])

    def _page_info(self, selected: Selected, page: FoundPage) -> dict[str, Any]:
        rows = page.rows
        values: dict[str, Any] = {
            "hasNextPage": page.has_next_page,
            "hasPreviousPage": page.has_previous_page,
            "startCursor": self._cursor(rows[0]) if rows else None,
            "endCursor": self._cursor(rows[-1]) if rows else None,
        }
        return {key: name if what == "__typename" else values[what] for key, what, name in selected}

    def _edge(self, selected: Selected) -> Build:
        """An edge's dict from its row, compiled as plan.compiled_build compiles an object's
        (made once per shape: a page's edges are built by one call each)."""
        names: dict[str, Any] = {"cursor": cursor}
        entries = []
        for number, (key, what, plan) in enumerate(selected):
            names[f"key_{number}"] = key
            if what == "node":
                names[f"node_{number}"] = plan.build
                read = f"node_{number}(builder, row, (path, key_{number}, False))"
            elif what == "cursor":
                read = f"cursor(row[{self.created}], row[{self.identity}])"
            else:
                names[f"name_{number}"] = plan
                read = f"name_{number}"
            entries.append(f"key_{number}: {read}")
        source = f"def edge(builder, row, path):\n    return {{{', '.join(entries)}}}\n"
        exec(source, names)  # the source is made of numbers and names, the values are in names
        made: Build = names["edge"]
        return made

    def build(
        self, builder: Builder, page: FoundPage, total: int | None, path: Path
    ) -> dict[str, Any]:
        built: dict[str, Any] = {}
        for key, what, selected in self.fields:
            if what == "edges":
                here = (path, key, False)
                edge = self._edges[key]
                built[key] = [
                    edge(builder, row, (here, index, False)) for index, row in enumerate(page.rows)
                ]
            elif what == "pageInfo":
                built[key] = self._page_info(selected, page)
            elif what == "totalCount":
                built[key] = total
            else:
                built[key] = selected
        return built


def _children(shape: Shape, rows: list[Row]) -> Iterator[tuple[ObjectPlan, list[Row]]]:
    for plan in shape.nodes():
        yield plan, rows


@dataclass(eq=False)
class RootList:
    """Query.runs, agents and threads."""

    key: str
    nodes: tuple[FieldNode, ...]
    nullable: bool
    definition: GraphQLField
    table: Table
    names: statements.Names  # the table's columns, as the operation reads them
    check: Check
    shape: Shape
    signature: Hashable = field(init=False)
    below: frozenset[Hashable] = field(init=False)

    folds: tuple[Folded, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.signature = ("root-list", id(self))
        self.below = self.shape.below()
        self.folds = self.shape.folds()

    def _listing(self, execution: Execution) -> Listing | RunqlError:
        return execution.arguments.checked(self, self.definition, self.nodes[0], self.check)

    def group(self, execution: Execution) -> Hashable | None:
        return None if isinstance(self._listing(execution), RunqlError) else self.signature

    def keys(self, execution: Execution, rows: Sequence[Row]) -> list[str]:
        return [""]

    async def load(self, execution: Execution, keys: list[str], folds: tuple[Folded, ...]) -> None:
        listing = self._listing(execution)
        assert isinstance(listing, Listing)
        joins = tuple(folded.join for folded in folds)
        made = root_statements(self.table, self.names, listing, joins)
        rows = await execution.all(made.page)
        execution.remember(self.table, rows)
        execution.unfold(len(self.names), rows, folds)
        rows_behind = made.behind is not None and bool(await execution.all(made.behind))
        found = execution.group(self.signature)
        found["page"] = assemble(rows, listing.page, rows_behind=rows_behind)
        if self.shape.counts:
            found["total"] = (await execution.all(made.count))[0][0]

    def children(
        self, execution: Execution, rows: Sequence[Row]
    ) -> Iterator[tuple[ObjectPlan, list[Row]]]:
        return _children(self.shape, execution.group(self.signature)["page"].rows)

    def value(self, builder: Builder, row: Row, path: Path) -> Any:
        here = (path, self.key, self.nullable)
        listing = self._listing(builder.execution)
        if isinstance(listing, RunqlError):
            builder.fail(listing, self, here)
            return None
        found = builder.execution.group(self.signature)
        return self.shape.build(builder, found["page"], found.get("total"), here)


@dataclass(eq=False)
class ListOf:
    """Thread.runs, Agent.runs and Thread.messageGroups: a page per parent, one statement for
    all the parents (and one for their counts, when totalCount is selected)."""

    key: str
    nodes: tuple[FieldNode, ...]
    nullable: bool
    definition: GraphQLField
    table: Table
    names: statements.Names  # the table's columns, as the operation reads them
    parent: str  # the listed rows' column that holds the parent's id
    parent_index: int  # where that column is in the listed rows
    parent_id: int  # the parent row's id column
    check: Check
    shape: Shape
    signature: Hashable = field(init=False)
    below: frozenset[Hashable] = field(init=False)

    folds: tuple[Folded, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.signature = ("list-of", self.table.name, self.parent)
        self.below = self.shape.below()
        self.folds = self.shape.folds()

    def _listing(self, execution: Execution) -> Listing | RunqlError:
        return execution.arguments.checked(self, self.definition, self.nodes[0], self.check)

    def group(self, execution: Execution) -> Hashable | None:
        listing = self._listing(execution)
        if isinstance(listing, RunqlError):
            return None
        return execution.memo(
            self, lambda: (self.signature, listing.run_filter, listing.page, self.shape.counts)
        )

    def keys(self, execution: Execution, rows: Sequence[Row]) -> list[str]:
        found = execution.group(self.group(execution))
        return [
            key for key in dict.fromkeys(row[self.parent_id] for row in rows) if key not in found
        ]

    async def load(self, execution: Execution, keys: list[str], folds: tuple[Folded, ...]) -> None:
        listing = self._listing(execution)
        assert isinstance(listing, Listing)
        request = listing.page
        joins = tuple(folded.join for folded in folds)
        made = statements_of(self.table, self.names, self.parent, listing, joins)
        rows = await execution.batched(made.page, keys)
        execution.remember(self.table, rows)
        execution.unfold(len(self.names), rows, folds)
        parents_behind = (
            set()
            if made.behind is None
            else {row[0] for row in await execution.batched(made.behind, keys)}
        )
        totals: dict[str, int] = {}
        if self.shape.counts:
            totals = {row[0]: row[1] for row in await execution.batched(made.count, keys)}
        index = self.parent_index
        grouped: defaultdict[str, list[Row]] = defaultdict(list)
        for row in rows:
            grouped[row[index]].append(row)
        found = execution.group(self.group(execution))
        for key in keys:
            found[key] = (
                assemble(grouped.get(key, []), request, rows_behind=key in parents_behind),
                totals.get(key, 0),
            )

    def children(
        self, execution: Execution, rows: Sequence[Row]
    ) -> Iterator[tuple[ObjectPlan, list[Row]]]:
        found = execution.group(self.group(execution))
        listed = [item for row in rows for item in found[row[self.parent_id]][0].rows]
        return _children(self.shape, listed)

    def value(self, builder: Builder, row: Row, path: Path) -> Any:
        here = (path, self.key, self.nullable)
        execution = builder.execution
        listing = self._listing(execution)
        if isinstance(listing, RunqlError):
            builder.fail(listing, self, here)
            return None
        page, total = execution.group(self.group(execution))[row[self.parent_id]]
        return self.shape.build(builder, page, total, here)
