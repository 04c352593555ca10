"""`extensions.executor` in development: "fast" or "standard", whichever ran the operation."""

from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from strawberry.extensions import SchemaExtension

FAST = "fast"
STANDARD = "standard"

_ran: ContextVar[list[str] | None] = ContextVar("runql_fastpath_ran", default=None)


def record(path: str) -> None:
    """Called by the executor; noted only while an ExecutorReport is listening."""
    ran = _ran.get()
    if ran is not None:
        ran.append(path)


class ExecutorReport(SchemaExtension):
    _ran: list[str] | None = None

    def on_execute(self) -> Iterator[None]:
        self._ran = []
        token = _ran.set(self._ran)
        try:
            yield
        finally:
            _ran.reset(token)

    def get_results(self) -> dict[str, Any]:
        return {"executor": self._ran[-1]} if self._ran else {}
