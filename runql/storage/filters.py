"""List filters, as SQL conditions. The same filters serve GraphQL and REST."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runql.errors import FieldNames, own_names
from runql.storage.tables import RunRow


class InvalidFilter(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class TimeRange:
    gt: datetime | None = None
    gte: datetime | None = None
    lt: datetime | None = None
    lte: datetime | None = None

    def check(self, field: str) -> None:
        if self.gt is not None and self.gte is not None:
            raise InvalidFilter(field, f"{field}: give gt or gte, not both")
        if self.lt is not None and self.lte is not None:
            raise InvalidFilter(field, f"{field}: give lt or lte, not both")
        lower, upper = self.gt or self.gte, self.lt or self.lte
        if lower is not None and upper is not None:
            both_inclusive = self.gte is not None and self.lte is not None
            if lower > upper or (lower == upper and not both_inclusive):
                raise InvalidFilter(
                    field,
                    f"{field}: the range is inverted (its lower bound "
                    "is not below its upper bound)",
                )

    def conditions(self, column: Any) -> list[Any]:
        bounds = [
            (self.gt, column.__gt__),
            (self.gte, column.__ge__),
            (self.lt, column.__lt__),
            (self.lte, column.__le__),
        ]
        return [compare(value) for value, compare in bounds if value is not None]


@dataclass(frozen=True)
class RunFilter:
    ids: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    agent_ids: tuple[str, ...] | None = None
    thread_ids: tuple[str, ...] | None = None
    created_at: TimeRange | None = None
    started_at: TimeRange | None = None
    completed_at: TimeRange | None = None

    def check(self, names: FieldNames = own_names) -> None:
        """Refusals name the range as `names` says (GraphQL's filter.createdAt)."""
        for name in ("created_at", "started_at", "completed_at"):
            time_range: TimeRange | None = getattr(self, name)
            if time_range is not None:
                time_range.check(names(name))

    def conditions(self, columns: Any = RunRow) -> list[Any]:
        """The filter's SQL, on `columns`: the runs table's row class by default, or a table's
        (or subquery's) column collection, as the fast path's statements have them."""
        found: list[Any] = []
        members: Sequence[tuple[tuple[str, ...] | None, str]] = (
            (self.ids, "id"),
            (self.statuses, "status"),
            (self.agent_ids, "agent_id"),
            (self.thread_ids, "thread_id"),
        )
        for values, name in members:
            if values is not None:
                found.append(getattr(columns, name).in_(values))
        ranges = (
            (self.created_at, "created_at"),
            (self.started_at, "started_at"),
            (self.completed_at, "completed_at"),
        )
        for time_range, name in ranges:
            if time_range is not None:
                found.extend(time_range.conditions(getattr(columns, name)))
        return found
