"""Which of the fast path's list statements PostgreSQL plans for their own values
(statements.planned_apart, storage.raw.CUSTOM_PLAN): a page or count with a filter, and a page
after or before a cursor; reads by key and plain first pages may keep generic plans."""

from datetime import UTC, datetime

from sqlalchemy import Executable

from runql.fastpath import statements
from runql.fastpath.connections import ListStatements, root_statements, statements_of
from runql.resolvers.pagination import Listing
from runql.storage.filters import RunFilter
from runql.storage.pages import Cursor, PageRequest
from runql.storage.raw import CUSTOM_PLAN
from runql.storage.tables import AgentRow, RunRow

RUNS = RunRow.__table__  # type: ignore[attr-defined]
AGENTS = AgentRow.__table__  # type: ignore[attr-defined]
NAMES = ("id", "status", "created_at")
CURSOR = Cursor(datetime(2025, 1, 1, tzinfo=UTC), "run_1")


def _apart(statement: Executable | None) -> bool | None:
    if statement is None:
        return None
    return bool(statement.get_execution_options().get(CUSTOM_PLAN))


def _marks(made: ListStatements) -> tuple[bool | None, bool | None, bool | None]:
    return _apart(made.page), _apart(made.behind), _apart(made.count)


def test_a_plain_first_page_and_its_count_keep_generic_plans() -> None:
    listing = Listing(PageRequest(limit=20))
    assert _marks(root_statements(RUNS, NAMES, listing, ())) == (False, None, False)
    assert _marks(statements_of(RUNS, NAMES, "agent_id", listing, ())) == (False, None, False)


def test_a_filtered_page_and_count_are_planned_for_their_values() -> None:
    listing = Listing(PageRequest(limit=20), RunFilter(statuses=("failed",)))
    assert _marks(root_statements(RUNS, NAMES, listing, ())) == (True, None, True)
    assert _marks(statements_of(RUNS, NAMES, "agent_id", listing, ())) == (True, None, True)


def test_a_page_after_a_cursor_is_planned_for_its_values_not_its_count() -> None:
    listing = Listing(PageRequest(limit=20, cursor=CURSOR))
    assert _marks(root_statements(RUNS, NAMES, listing, ())) == (True, True, False)
    assert _marks(statements_of(RUNS, NAMES, "agent_id", listing, ())) == (True, True, False)


def test_reads_by_key_keep_generic_plans() -> None:
    assert _apart(statements.by_id(AGENTS, ("id", "name"))) is False
    assert _apart(statements.by_parent(RUNS, NAMES, "agent_id", ("created_at", "id"))) is False
