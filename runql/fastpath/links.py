"""Fields that follow a link from an object's row: to one object by id (Run.agent), to the
children that point at it (Run.errors, MessageGroup.messages), to its one child
(Message.content), and MessageGroup.run. Each reads all its parent rows' keys at once."""

from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import FieldNode
from sqlalchemy import Table

from runql.fastpath import statements
from runql.fastpath.build import Builder, Path
from runql.fastpath.execution import Execution, Row
from runql.fastpath.plan import ObjectPlan


def _distinct(values: Iterator[Any]) -> list[str]:
    return [value for value in dict.fromkeys(values) if value is not None]


@dataclass(eq=False)
class ById:
    """An object whose id is in a column of the parent row, in the caller's organization."""

    key: str
    nodes: tuple[FieldNode, ...]
    nullable: bool
    table: Table
    source: int  # the parent row's column that holds the id
    child: ObjectPlan
    signature: Hashable = field(init=False)
    below: frozenset[Hashable] = field(init=False)

    def __post_init__(self) -> None:
        self.signature = f"id:{self.table.name}"  # a str: its hash is computed once
        self.below = self.child.below()

    def group(self, execution: Execution) -> Hashable | None:
        return self.signature

    def keys(self, execution: Execution, rows: Sequence[Row]) -> list[str]:
        known = execution.table_rows(self.table)
        return [key for key in _distinct(row[self.source] for row in rows) if key not in known]

    async def load(self, execution: Execution, keys: list[str]) -> None:
        execution.remember(self.table, await execution.batched(statements.by_id(self.table),
                                                               keys))

    def children(self, execution: Execution,
                 rows: Sequence[Row]) -> Iterator[tuple[ObjectPlan, list[Row]]]:
        known = execution.table_rows(self.table)
        found = [known[key] for key in _distinct(row[self.source] for row in rows)
                 if key in known]
        yield self.child, found

    def value(self, builder: Builder, row: Row, path: Path) -> Any:
        target = builder.execution.table_rows(self.table).get(row[self.source])
        if target is None:
            return None
        return self.child.build(builder, target, (path, self.key, self.nullable))


@dataclass(eq=False)
class ByParent:
    """The rows whose `parent` column holds the parent row's id: a list, or at most one."""

    key: str
    nodes: tuple[FieldNode, ...]
    nullable: bool
    table: Table
    parent: str
    order: tuple[str, ...]
    parent_id: int  # the parent row's id column
    child: ObjectPlan
    many: bool = True
    items_nullable: bool = False
    signature: Hashable = field(init=False)
    below: frozenset[Hashable] = field(init=False)

    def __post_init__(self) -> None:
        self.signature = f"children:{self.table.name}:{self.parent}:{','.join(self.order)}"
        self.below = self.child.below()

    def group(self, execution: Execution) -> Hashable | None:
        return self.signature

    def keys(self, execution: Execution, rows: Sequence[Row]) -> list[str]:
        found = execution.group(self.signature)
        return [key for key in _distinct(row[self.parent_id] for row in rows)
                if key not in found]

    async def load(self, execution: Execution, keys: list[str]) -> None:
        statement = statements.by_parent(self.table, self.parent, self.order)
        rows = await execution.batched(statement, keys)
        execution.remember(self.table, rows)
        index = statements.column_index(self.table)[self.parent]
        grouped: defaultdict[str, list[Row]] = defaultdict(list)
        for row in rows:
            grouped[row[index]].append(row)
        found = execution.group(self.signature)
        for key in keys:
            found[key] = grouped.get(key, [])

    def _of(self, execution: Execution, row: Row) -> list[Row]:
        found: list[Row] = execution.group(self.signature).get(row[self.parent_id], [])
        return found

    def children(self, execution: Execution,
                 rows: Sequence[Row]) -> Iterator[tuple[ObjectPlan, list[Row]]]:
        yield self.child, [item for row in rows for item in self._of(execution, row)]

    def value(self, builder: Builder, row: Row, path: Path) -> Any:
        items = self._of(builder.execution, row)
        here = (path, self.key, self.nullable)
        if not self.many:
            return self.child.build(builder, items[0], here) if items else None
        build, nullable = self.child.build, self.items_nullable
        return [build(builder, item, (here, index, nullable)) for index, item in enumerate(items)]


@dataclass(eq=False)
class RunOfGroup:
    """MessageGroup.run: the run that wrote the group, else the run it triggered."""

    key: str
    nodes: tuple[FieldNode, ...]
    nullable: bool
    table: Table
    parent_id: int
    child: ObjectPlan
    signature: Hashable = field(init=False)
    below: frozenset[Hashable] = field(init=False)

    def __post_init__(self) -> None:
        self.signature = f"run-of-group:{self.table.name}"
        self.below = self.child.below()

    def group(self, execution: Execution) -> Hashable | None:
        return self.signature

    def keys(self, execution: Execution, rows: Sequence[Row]) -> list[str]:
        found = execution.group(self.signature)
        return [key for key in _distinct(row[self.parent_id] for row in rows)
                if key not in found]

    async def load(self, execution: Execution, keys: list[str]) -> None:
        statement = statements.runs_of_groups(self.table)
        rows = await execution.batched(statement, keys, also=("triggers",))
        execution.remember(self.table, rows)
        index = statements.column_index(self.table)
        wrote = {row[index["message_group_id"]]: row for row in rows}
        triggered = {row[index["trigger_message_group_id"]]: row for row in rows}
        found = execution.group(self.signature)
        for key in keys:
            found[key] = wrote.get(key) or triggered.get(key)

    def _of(self, execution: Execution, row: Row) -> Row | None:
        return execution.group(self.signature).get(row[self.parent_id])

    def children(self, execution: Execution,
                 rows: Sequence[Row]) -> Iterator[tuple[ObjectPlan, list[Row]]]:
        found = {id(run): run for row in rows if (run := self._of(execution, row)) is not None}
        yield self.child, list(found.values())

    def value(self, builder: Builder, row: Row, path: Path) -> Any:
        run = self._of(builder.execution, row)
        if run is None:
            return None
        return self.child.build(builder, run, (path, self.key, self.nullable))
