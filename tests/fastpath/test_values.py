"""The fast path's converters of raw column values (fastpath.values) write what the standard
executor's own functions write, from whatever the driver hands over."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from runql.fastpath.values import cursor
from runql.storage.pages import Cursor
from runql.storage.types import instant

CREATED = [
    "2025-01-02 03:04:05.678901",  # SQLite's stored text
    "2025-01-02 03:04:05.000000",  # ... with no fraction: isoformat leaves it out
    datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),  # PostgreSQL's timestamptz
    datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2))),
    datetime(2025, 1, 2, 3, 4, 5, 678901),  # naive: UTC
]


@pytest.mark.parametrize("created_at", CREATED)
def test_a_cursor_is_the_one_the_page_s_cursor_encodes(created_at: Any) -> None:
    assert cursor(created_at, "run_1") == Cursor(instant(created_at), "run_1").encode()
