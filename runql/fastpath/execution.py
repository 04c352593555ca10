"""One execution of a plan: the caller's organization, the arguments as this request gives
them, one connection's raw reads (storage.raw), and what the statements found."""

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Executable, Table

from runql.fastpath.arguments import Arguments
from runql.fastpath.statements import IDENTITY
from runql.limits import MAX_BATCH
from runql.storage.raw import RawReads

if TYPE_CHECKING:
    from runql.fastpath.plan import Folded

T = TypeVar("T")
Row = Any  # a driver's row (asyncpg Record, tuple): the columns of its table's layout


@dataclass(slots=True)
class Execution:
    reads: RawReads
    org_id: str
    arguments: Arguments
    # by table, by id (None: not there); by group (Fetching.group), by key: both made on
    # first use, so that a compiled build (plan.Inlined) reads them without a call
    rows: defaultdict[Table, dict[str, Row]] = field(default_factory=lambda: defaultdict(dict))
    found: defaultdict[Hashable, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    memos: dict[object, Any] = field(default_factory=dict)

    async def all(self, statement: Executable, **params: Any) -> Sequence[Row]:
        """Every statement is bound to the caller's organization (statements.in_organization)."""
        return await self.reads.all(statement, {"org": self.org_id, **params})

    async def batched(
        self, statement: Executable, keys: Sequence[str], also: tuple[str, ...] = ()
    ) -> list[Row]:
        """The rows of `statement` for all the keys, bound MAX_BATCH keys at a time to `ids` (and
        to the parameters named in `also`)."""
        found: list[Row] = []
        for start in range(0, len(keys), MAX_BATCH):
            chunk = list(keys[start : start + MAX_BATCH])
            params = {"ids": chunk, **dict.fromkeys(also, chunk)}
            found.extend(await self.all(statement, **params))
        return found

    def unfold(self, width: int, rows: Sequence[Row], folds: "tuple[Folded, ...]") -> None:
        """Hands each folded field what its join found: the columns after the parent's first
        `width` (and after the previous joins'), or None where the joined id is null."""
        start = width
        for folded in folds:
            end = start + len(folded.join.names)
            identity = start + IDENTITY
            folded.absorb(
                self, rows, [None if row[identity] is None else row[start:end] for row in rows]
            )
            start = end

    def table_rows(self, table: Table) -> dict[str, Row]:
        return self.rows[table]

    def remember(self, table: Table, rows: Sequence[Row]) -> None:
        """Rows found by any statement, kept by id: a later lookup by id needs no statement."""
        known = self.table_rows(table)
        for row in rows:
            known[row[IDENTITY]] = row

    def memo(self, owner: object, make: Callable[[], T]) -> T:
        """`make()`, once per owner (a plan's field) in this execution."""
        if owner in self.memos:
            found: T = self.memos[owner]
            return found
        made = self.memos[owner] = make()
        return made

    def group(self, key: Hashable) -> dict[str, Any]:
        return self.found[key]
