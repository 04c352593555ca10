"""Building the response from what the statements found: each plan field gives its value for a
row, and a field whose arguments the resolver would refuse records that failure for settle.py."""

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import FieldNode

from runql.fastpath.execution import Execution

if TYPE_CHECKING:
    from runql.fastpath.plan import Fetching

# Where a value is: (the parent's path, key or index, whether null may stand there); None is
# the root. Built as the response is, so that a failure can be located and propagated.
Path = tuple[Any, str | int, bool] | None


@dataclass(frozen=True, slots=True)
class Failure:
    error: Exception
    field: "Fetching"
    nodes: tuple[FieldNode, ...]
    path: tuple[Any, str | int, bool]


@dataclass
class Builder:
    execution: Execution
    failures: list[Failure] = field(default_factory=list)
    rows: Any = field(init=False)  # the execution's, read by compiled builds (plan.Inlined)
    found: Any = field(init=False)
    # objects built once for all the places they stand (links.ById of a pure plan), by the
    # field and the object's id
    shared: defaultdict[object, dict[Any, Any]] = field(default_factory=lambda: defaultdict(dict))

    def __post_init__(self) -> None:
        self.rows = self.execution.rows
        self.found = self.execution.found

    def fail(self, error: Exception, at: "Fetching", path: tuple[Any, str | int, bool]) -> None:
        """The field at `path` fails as its resolver would; settle.py nulls what it must."""
        self.failures.append(Failure(error, at, at.nodes, path))


def field_path(path: Path, key: str, nullable: bool) -> tuple[Any, str | int, bool]:
    return (path, key, nullable)


def as_list(path: Path) -> list[str | int]:
    keys: list[str | int] = []
    while path is not None:
        path, key, _ = path
        keys.append(key)
    keys.reverse()
    return keys
