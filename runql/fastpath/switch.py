"""Whether the fast path may run, besides the schema's setting (RUNQL_FASTPATH=0 builds a schema
without it, runql.served_schema): not inside `standard_only()` (the differential tests and the
benchmarks run the standard executor that way)."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_standard_only: ContextVar[bool] = ContextVar("runql_fastpath_standard_only", default=False)


@contextmanager
def standard_only() -> Iterator[None]:
    """Operations executed inside the block run on the standard executor."""
    token = _standard_only.set(True)
    try:
        yield
    finally:
        _standard_only.reset(token)


def is_standard_only() -> bool:
    return _standard_only.get()
