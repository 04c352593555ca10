"""Point reads: a query whose one root field finds an object by id (roots.RootObject) and
selects only its leaf fields (columns, __typename, objects made of columns), such as
`run(id: $id) { id status }`. Its plan needs no scheduling, no second level and no error to
settle: one statement (statements.by_id, the very one run_plan would run, scoped to the
caller's organization), its SQL for one key made once (storage.raw.OneKey: on PostgreSQL the
key bound to an equality, not an array of one), then the row's fields as ObjectPlan.build
gives them, written after a prefix encoded once. The answer is the
same bytes run_plan's gives; the id is checked by the same check, and a refused id is declined
(None), for the view to report.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Select
from sqlalchemy.engine import Dialect

from runql.errors import RunqlError
from runql.fastpath import statements
from runql.fastpath.arguments import Arguments
from runql.fastpath.build import Builder
from runql.fastpath.cache import MAX_PLANS
from runql.fastpath.execution import Execution
from runql.fastpath.plan import Column, Embedded, OperationPlan, Typename
from runql.fastpath.roots import RootObject
from runql.fastpath.statements import IDENTITY
from runql.storage.raw import OneKey, RawReads, RawRow

LEAVES = (Column, Typename, Embedded)  # fields built from the row alone


@dataclass(frozen=True, slots=True)
class PointRead:
    root: RootObject
    statement: Select[Any]
    prefix: bytes  # {"data":{"<key>":
    _one: dict[str, OneKey | None] = field(default_factory=dict)  # by dialect

    @classmethod
    def of(cls, plan: OperationPlan) -> "PointRead | None":
        """The plan's point read, if it is one."""
        if len(plan.fields) != 1:
            return None
        root = plan.fields[0]
        if not isinstance(root, RootObject) or not all(
            isinstance(field, LEAVES) for field in root.child.fields
        ):
            return None
        prefix = b'{"data":{' + orjson.dumps(root.key) + b":"
        return cls(root, statements.by_id(root.table, root.names), prefix)

    def _one_key(self, dialect: Dialect) -> OneKey | None:
        try:
            return self._one[dialect.name]
        except KeyError:
            found = self._one[dialect.name] = OneKey.of(self.statement, dialect)
            return found

    def query(self, reads: RawReads, org_id: str, arguments: Arguments) -> "Query | None":
        """The read of the id the request gives; None where the id is refused (the view
        reports it)."""
        execution = Execution(reads, org_id, arguments)
        found = self.root.checked_id(execution)
        if isinstance(found, RunqlError):
            return None
        return Query(execution, found, self._one_key(reads.dialect))

    def answer(self, query: "Query", rows: Sequence[RawRow]) -> bytes:
        """The response body of the row read for the id."""
        row = rows[0] if rows and rows[0][IDENTITY] == query.id else None
        if row is None:
            return self.prefix + b"null}}"
        here = (None, self.root.key, self.root.nullable)
        value = self.root.child.build(Builder(query.execution), row, here)
        return self.prefix + orjson.dumps(value) + b"}}"

    async def body(self, reads: RawReads, org_id: str, arguments: Arguments) -> bytes | None:
        """The response body; None where the id is refused (the view reports it)."""
        query = self.query(reads, org_id, arguments)
        if query is None:
            return None
        if query.one is None:
            rows = await reads.all(self.statement, {"org": org_id, "ids": [query.id]})
        else:
            rows = await reads.run(query.one.sql, query.arguments())
        return self.answer(query, rows)


@dataclass(slots=True)  # (not frozen: one is made a request, and a frozen __init__ costs more)
class Query:
    """One request's point read: its execution, the id, and its SQL for one key (None: bound
    by RawReads.all)."""

    execution: Execution
    id: str
    one: OneKey | None

    def arguments(self) -> list[Any]:
        assert self.one is not None
        return self.one.arguments({"org": self.execution.org_id, "ids": self.id})


_points: dict[int, tuple[OperationPlan, PointRead | None]] = {}  # by the plan's id


def point_read(plan: OperationPlan) -> PointRead | None:
    """PointRead.of, once per plan (the plan is held with it: its id stays its own)."""
    found = _points.get(id(plan))
    if found is not None and found[0] is plan:
        return found[1]
    if len(_points) >= MAX_PLANS:  # as many as the plan cache keeps
        _points.clear()
    made = PointRead.of(plan)
    _points[id(plan)] = (plan, made)
    return made
