"""Point reads: a query whose one root field finds an object by id (roots.RootObject) and
selects only its leaf fields (columns, __typename, objects made of columns), such as
`run(id: $id) { id status }`. Its plan needs no scheduling, no second level and no error to
settle: one statement (statements.by_id, the very one run_plan would run, scoped to the
caller's organization), then the row's fields as ObjectPlan.build gives them, written after a
prefix encoded once. The answer is the same bytes run_plan's gives; the id is checked by the
same check, and a refused id is declined (None), for the view to report.
"""

from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import Select

from runql.errors import RunqlError
from runql.fastpath import statements
from runql.fastpath.arguments import Arguments
from runql.fastpath.build import Builder
from runql.fastpath.execution import Execution
from runql.fastpath.plan import Column, Embedded, OperationPlan, Typename
from runql.fastpath.roots import RootObject
from runql.fastpath.statements import IDENTITY
from runql.storage.raw import RawReads

LEAVES = (Column, Typename, Embedded)  # fields built from the row alone


@dataclass(frozen=True, slots=True)
class PointRead:
    root: RootObject
    statement: Select[Any]
    prefix: bytes  # {"data":{"<key>":

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

    async def body(self, reads: RawReads, org_id: str, arguments: Arguments) -> bytes | None:
        """The response body; None where the id is refused (the view reports it)."""
        execution = Execution(reads, org_id, arguments)
        found = self.root.checked_id(execution)
        if isinstance(found, RunqlError):
            return None
        rows = await reads.all(self.statement, {"org": org_id, "ids": [found]})
        row = rows[0] if rows and rows[0][IDENTITY] == found else None
        if row is None:
            return self.prefix + b"null}}"
        here = (None, self.root.key, self.root.nullable)
        value = self.root.child.build(Builder(execution), row, here)
        return self.prefix + orjson.dumps(value) + b"}}"


_points: WeakKeyDictionary[OperationPlan, PointRead | None] = WeakKeyDictionary()


def point_read(plan: OperationPlan) -> PointRead | None:
    """PointRead.of, once per plan."""
    try:
        return _points[plan]
    except KeyError:
        found = _points[plan] = PointRead.of(plan)
        return found
