"""Root fields that find objects by id: run, agent, thread, messageGroup, actor, and node and
nodes, whose objects may be of any kind. Ids are checked by the resolvers' own checks
(runql.ids.require, runql.resolvers.queries.node_kinds), so a refused id is the same error."""

from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import FieldNode, GraphQLField
from sqlalchemy import Table

from runql.errors import RunqlError
from runql.fastpath.build import Builder, Path
from runql.fastpath.execution import Execution, Row
from runql.fastpath.links import load_by_id
from runql.fastpath.plan import Folded, ObjectPlan
from runql.fastpath.statements import Names
from runql.ids import Kind, require
from runql.resolvers.queries import node_kinds

Found = tuple[Table, str] | None  # where an id is to be found; None: it names nothing to find


def _row(execution: Execution, found: Found) -> Row | None:
    return None if found is None else execution.table_rows(found[0]).get(found[1])


@dataclass(eq=False)
class RootObject:
    """run(id:), agent(id:), thread(id:), messageGroup(id:), actor(id:)."""

    key: str
    nodes: tuple[FieldNode, ...]
    nullable: bool
    definition: GraphQLField
    kind: Kind
    table: Table
    names: Names  # the table's columns, as the operation reads them
    child: ObjectPlan
    signature: Hashable = field(init=False)
    below: frozenset[Hashable] = field(init=False)

    def __post_init__(self) -> None:
        self.signature = f"id:{self.table.name}"
        self.below = self.child.below()

    @property
    def folds(self) -> tuple[Folded, ...]:
        return self.child.folds

    def _check(self, id: str) -> str:
        require(id, self.kind, "id")
        return id

    def checked_id(self, execution: Execution) -> str | RunqlError:
        """The id argument, checked as the resolver checks it (once per execution)."""
        return execution.arguments.checked(self, self.definition, self.nodes[0], self._check)

    def group(self, execution: Execution) -> Hashable | None:
        return None if isinstance(self.checked_id(execution), RunqlError) else self.signature

    def keys(self, execution: Execution, rows: Sequence[Row]) -> list[str]:
        found = self.checked_id(execution)
        assert isinstance(found, str)
        return [found]

    async def load(self, execution: Execution, keys: list[str], folds: tuple[Folded, ...]) -> None:
        await load_by_id(execution, self.table, self.names, keys, folds)

    def children(
        self, execution: Execution, rows: Sequence[Row]
    ) -> Iterator[tuple[ObjectPlan, list[Row]]]:
        found = execution.table_rows(self.table).get(self.keys(execution, rows)[0])
        yield self.child, [] if found is None else [found]

    def value(self, builder: Builder, row: Row, path: Path) -> Any:
        here = (path, self.key, self.nullable)
        found = self.checked_id(builder.execution)
        if isinstance(found, RunqlError):
            builder.fail(found, self, here)
            return None
        target = builder.execution.table_rows(self.table).get(found)
        return None if target is None else self.child.build(builder, target, here)


def node_ids(ids: list[str]) -> list[tuple[Kind, str]]:
    """nodes(ids:): each id with its kind."""
    return list(zip(node_kinds(ids), ids, strict=True))


def node_id(id: str) -> list[tuple[Kind, str]]:
    """node(id:): the id with its kind."""
    return [(require(id, None, "id"), id)]


@dataclass(eq=False)
class RootNodes:
    """node(id:) and nodes(ids:): objects of any kind, each built by its own type's plan."""

    key: str
    nodes: tuple[FieldNode, ...]
    nullable: bool
    definition: GraphQLField
    many: bool
    items_nullable: bool
    tables: dict[Kind, Table]
    names: dict[Table, Names]  # each table's columns, as the operation reads them
    plans: dict[Kind, ObjectPlan]  # by the kind of id: the plan of the type it names
    signature: Hashable = field(init=False)
    below: frozenset[Hashable] = field(init=False)
    folds: tuple[Folded, ...] = ()  # its statements read one table each, as the ids say

    def __post_init__(self) -> None:
        self.signature = ("nodes", id(self))
        self.below = frozenset().union(*(plan.below() for plan in self.plans.values()))

    def _wanted(self, execution: Execution) -> list[tuple[Kind, str]] | RunqlError:
        check = node_ids if self.many else node_id
        return execution.arguments.checked(self, self.definition, self.nodes[0], check)

    def _found(self, execution: Execution) -> list[Found]:
        wanted = self._wanted(execution)
        assert not isinstance(wanted, RunqlError)
        return [
            (self.tables[kind], value) if kind in self.tables else None for kind, value in wanted
        ]

    def group(self, execution: Execution) -> Hashable | None:
        return None if isinstance(self._wanted(execution), RunqlError) else self.signature

    def keys(self, execution: Execution, rows: Sequence[Row]) -> list[str]:
        return [""]

    async def load(self, execution: Execution, keys: list[str], folds: tuple[Folded, ...]) -> None:
        by_table: defaultdict[Table, list[str]] = defaultdict(list)
        for found in self._found(execution):
            if found is not None:
                by_table[found[0]].append(found[1])
        for table, ids in by_table.items():
            await load_by_id(execution, table, self.names[table], list(dict.fromkeys(ids)))

    def children(
        self, execution: Execution, rows: Sequence[Row]
    ) -> Iterator[tuple[ObjectPlan, list[Row]]]:
        wanted = self._wanted(execution)
        assert not isinstance(wanted, RunqlError)  # group() let only good ids fetch
        by_kind: defaultdict[Kind, dict[str, Row]] = defaultdict(dict)
        for kind, value in wanted:
            row = _row(execution, (self.tables[kind], value)) if kind in self.tables else None
            if row is not None:
                by_kind[kind][value] = row
        for kind, found in by_kind.items():
            yield self.plans[kind], list(found.values())

    def _one(self, builder: Builder, kind: Kind, found: Found, path: Any) -> Any:
        row = _row(builder.execution, found)
        return None if row is None else self.plans[kind].build(builder, row, path)

    def value(self, builder: Builder, row: Row, path: Path) -> Any:
        here = (path, self.key, self.nullable)
        wanted = self._wanted(builder.execution)
        if isinstance(wanted, RunqlError):
            builder.fail(wanted, self, here)
            return None
        found = self._found(builder.execution)
        items = [
            self._one(builder, kind, where, (here, index, self.items_nullable))
            for index, ((kind, _), where) in enumerate(zip(wanted, found, strict=True))
        ]
        return items if self.many else items[0]
