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
from runql.fastpath.plan import Folded, ObjectPlan
from runql.fastpath.statements import Join, Names


def _distinct(values: list[Any]) -> list[str]:
    found = dict.fromkeys(values)
    found.pop(None, None)
    return list(found)


async def load_by_id(
    execution: Execution,
    table: Table,
    names: Names,
    keys: list[str],
    folds: tuple[Folded, ...] = (),
) -> None:
    """The rows of the keys not known yet (and what their folds join)."""
    known = execution.table_rows(table)
    missing = [key for key in keys if key not in known]
    if missing:
        statement = statements.by_id(table, names, tuple(folded.join for folded in folds))
        rows = await execution.batched(statement, missing)
        execution.remember(table, rows)
        execution.unfold(len(names), rows, folds)


@dataclass(eq=False)
class ById:
    """An object whose id is in a column of the parent row, in the caller's organization."""

    key: str
    nodes: tuple[FieldNode, ...]
    nullable: bool
    table: Table
    names: Names  # the table's columns, as the operation reads them
    source: int  # the parent row's column that holds the id
    column: str  # its name
    child: ObjectPlan
    signature: Hashable = field(init=False)
    below: frozenset[Hashable] = field(init=False)
    join: Join = field(init=False)

    def __post_init__(self) -> None:
        self.signature = f"id:{self.table.name}"  # a str: its hash is computed once
        self.below = self.child.below()
        self.join = Join(self.table, "id", self.column, self.names)

    @property
    def folds(self) -> tuple[Folded, ...]:
        return self.child.folds

    def group(self, execution: Execution) -> Hashable | None:
        return self.signature

    def keys(self, execution: Execution, rows: Sequence[Row]) -> list[str]:
        known = execution.table_rows(self.table)
        return [key for key in _distinct([row[self.source] for row in rows]) if key not in known]

    async def load(self, execution: Execution, keys: list[str], folds: tuple[Folded, ...]) -> None:
        await load_by_id(execution, self.table, self.names, keys, folds)

    def absorb(
        self, execution: Execution, parents: Sequence[Row], found: Sequence[Row | None]
    ) -> None:
        known = execution.table_rows(self.table)
        for parent, row in zip(parents, found, strict=True):
            key = parent[self.source]
            if row is not None:
                known[key] = row
            elif key is not None and key not in known:
                known[key] = None

    def children(
        self, execution: Execution, rows: Sequence[Row]
    ) -> Iterator[tuple[ObjectPlan, list[Row]]]:
        known = execution.table_rows(self.table)
        found = [
            row
            for key in _distinct([row[self.source] for row in rows])
            if (row := known.get(key)) is not None
        ]
        yield self.child, found

    def value(self, builder: Builder, row: Row, path: Path) -> Any:
        target = builder.execution.table_rows(self.table).get(row[self.source])
        if target is None:
            return None
        return self.child.build(builder, target, (path, self.key, self.nullable))

    @property
    def pure(self) -> bool:
        return self.child.pure

    def inline(self, number: int, names: dict[str, Any]) -> str:
        if self.child.pure:  # each object built once: an actor of many messages, an agent
            names[f"shared_{number}"] = self._shared
            names[f"token_{number}"] = self
            made, key = f"made_{number}", f"id_{number}"
            return (
                f"{made}[{key}] if ({key} := row[{self.source}]) in"
                f" ({made} := builder.shared[token_{number}]) else"
                f" shared_{number}(builder, {key})"
            )
        names[f"table_{number}"] = self.table
        names[f"child_{number}"] = self.child.build
        found = f"found_{number}"
        return (
            f"None if ({found} := builder.rows[table_{number}].get(row[{self.source}])) is None"
            f" else child_{number}(builder, {found}, (path, key_{number}, {self.nullable}))"
        )

    def _shared(self, builder: Builder, key: Any) -> Any:
        """The object of that id, built the first time it is asked for (with no path: nothing
        under it fails, so nothing is located)."""
        target = builder.rows[self.table].get(key)
        made = None if target is None else self.child.build(builder, target, None)
        builder.shared[self][key] = made
        return made


@dataclass(eq=False)
class ByParent:
    """The rows whose `parent` column holds the parent row's id: a list, or at most one."""

    key: str
    nodes: tuple[FieldNode, ...]
    nullable: bool
    table: Table
    names: Names  # the table's columns, as the operation reads them
    parent: str
    parent_index: int  # where the parent column is in the rows
    order: tuple[str, ...]
    parent_id: int  # the parent row's id column
    child: ObjectPlan
    many: bool = True
    items_nullable: bool = False
    signature: Hashable = field(init=False)
    below: frozenset[Hashable] = field(init=False)
    join: Join | None = field(init=False)  # its one child, whose parent column is unique

    @property
    def pure(self) -> bool:
        return self.child.pure

    def __post_init__(self) -> None:
        self.signature = f"children:{self.table.name}:{self.parent}:{','.join(self.order)}"
        self.below = self.child.below()
        self.join = None if self.many else Join(self.table, self.parent, "id", self.names)

    @property
    def folds(self) -> tuple[Folded, ...]:
        return self.child.folds

    def group(self, execution: Execution) -> Hashable | None:
        return self.signature

    def keys(self, execution: Execution, rows: Sequence[Row]) -> list[str]:
        found = execution.group(self.signature)
        return [key for key in _distinct([row[self.parent_id] for row in rows]) if key not in found]

    async def load(self, execution: Execution, keys: list[str], folds: tuple[Folded, ...]) -> None:
        statement = statements.by_parent(
            self.table,
            self.names,
            self.parent,
            self.order,
            tuple(folded.join for folded in folds),
        )
        rows = await execution.batched(statement, keys)
        execution.remember(self.table, rows)
        execution.unfold(len(self.names), rows, folds)
        index = self.parent_index
        grouped: defaultdict[str, list[Row]] = defaultdict(list)
        for row in rows:
            grouped[row[index]].append(row)
        found = execution.group(self.signature)
        for key in keys:
            found[key] = grouped.get(key, [])

    def absorb(
        self, execution: Execution, parents: Sequence[Row], found: Sequence[Row | None]
    ) -> None:
        execution.remember(self.table, [row for row in found if row is not None])
        group = execution.group(self.signature)
        for parent, row in zip(parents, found, strict=True):
            group.setdefault(parent[self.parent_id], [] if row is None else [row])

    def _of(self, execution: Execution, row: Row) -> list[Row]:
        found: list[Row] = execution.group(self.signature).get(row[self.parent_id], [])
        return found

    def children(
        self, execution: Execution, rows: Sequence[Row]
    ) -> Iterator[tuple[ObjectPlan, list[Row]]]:
        found, parent_id = execution.group(self.signature), self.parent_id
        yield self.child, [item for row in rows for item in found.get(row[parent_id], ())]

    def value(self, builder: Builder, row: Row, path: Path) -> Any:
        items = self._of(builder.execution, row)
        here = (path, self.key, self.nullable)
        if not self.many:
            return self.child.build(builder, items[0], here) if items else None
        build, nullable = self.child.build, self.items_nullable
        return [build(builder, item, (here, index, nullable)) for index, item in enumerate(items)]

    def inline(self, number: int, names: dict[str, Any]) -> str:
        names[f"group_{number}"] = self.signature
        names[f"child_{number}"] = self.child.build
        items = f"builder.found[group_{number}].get(row[{self.parent_id}], ())"
        here = f"(path, key_{number}, {self.nullable})"
        if self.child.pure:  # nothing under it fails, so nothing is located: no paths
            if not self.many:
                found = f"found_{number}"
                return (
                    f"child_{number}(builder, {found}[0], None) if ({found} := {items}) else None"
                )
            return f"[child_{number}(builder, item, None) for item in {items}]"
        if not self.many:
            found = f"found_{number}"
            return f"child_{number}(builder, {found}[0], {here}) if ({found} := {items}) else None"
        return (
            f"[child_{number}(builder, item, (here, index, {self.items_nullable}))"
            f" for here in [{here}] for index, item in enumerate({items})]"
        )


@dataclass(eq=False)
class RunOfGroup:
    """MessageGroup.run: the run that wrote the group, else the run it triggered."""

    key: str
    nodes: tuple[FieldNode, ...]
    nullable: bool
    table: Table
    names: Names  # the table's columns, as the operation reads them
    wrote: str  # the run's column that holds the id of the group it wrote
    triggered: str  # and that of the group that triggered it
    wrote_index: int  # where each of the two is in the rows
    triggered_index: int
    parent_id: int
    child: ObjectPlan
    signature: Hashable = field(init=False)
    below: frozenset[Hashable] = field(init=False)

    @property
    def pure(self) -> bool:
        return self.child.pure

    def __post_init__(self) -> None:
        self.signature = f"run-of-group:{self.table.name}"
        self.below = self.child.below()

    @property
    def folds(self) -> tuple[Folded, ...]:
        return self.child.folds

    def group(self, execution: Execution) -> Hashable | None:
        return self.signature

    def keys(self, execution: Execution, rows: Sequence[Row]) -> list[str]:
        found = execution.group(self.signature)
        return [key for key in _distinct([row[self.parent_id] for row in rows]) if key not in found]

    async def load(self, execution: Execution, keys: list[str], folds: tuple[Folded, ...]) -> None:
        joins = tuple(folded.join for folded in folds)
        statement = statements.writers(self.table, self.names, self.wrote, self.triggered, joins)
        rows = await execution.batched(statement, keys, also=("triggers",))
        execution.remember(self.table, rows)
        execution.unfold(len(self.names), rows, folds)
        wrote = {row[self.wrote_index]: row for row in rows}
        triggered = {row[self.triggered_index]: row for row in rows}
        found = execution.group(self.signature)
        for key in keys:
            found[key] = wrote.get(key) or triggered.get(key)

    def _of(self, execution: Execution, row: Row) -> Row | None:
        return execution.group(self.signature).get(row[self.parent_id])

    def children(
        self, execution: Execution, rows: Sequence[Row]
    ) -> Iterator[tuple[ObjectPlan, list[Row]]]:
        found = {id(run): run for row in rows if (run := self._of(execution, row)) is not None}
        yield self.child, list(found.values())

    def value(self, builder: Builder, row: Row, path: Path) -> Any:
        run = self._of(builder.execution, row)
        if run is None:
            return None
        return self.child.build(builder, run, (path, self.key, self.nullable))
