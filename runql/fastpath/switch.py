"""Whether the fast path may run: on unless RUNQL_FASTPATH=0, and not inside `standard_only()`
(the differential tests and the benchmarks run the standard executor that way)."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_standard_only: ContextVar[bool] = ContextVar("runql_fastpath_standard_only", default=False)


def enabled_by_environment() -> bool:
    """RUNQL_FASTPATH=0 turns the fast path off for the process (read at schema build)."""
    return os.environ.get("RUNQL_FASTPATH", "1").strip().lower() not in ("0", "false", "no")


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
