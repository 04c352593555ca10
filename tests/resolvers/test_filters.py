"""`RunFilter`: every field selects exactly the runs a direct check over the stored rows does."""

import operator
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from runql.enums import TERMINAL_RUN_STATUSES, RunStatus
from runql.storage.database import Database
from runql.storage.tables import RunRow
from tests.conftest import DEMO_RUNS, GraphQLClient

RUNS = """
query Runs($filter: RunFilter, $after: String) {
  runs(filter: $filter, first: 100, after: $after) {
    totalCount
    edges { node { id } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

AGENT_RUNS = """
query AgentRuns($id: ID!, $filter: RunFilter) {
  agent(id: $id) { runs(filter: $filter, first: 100) { totalCount edges { node { id } } } }
}
"""

BOUNDS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
COLUMNS = {"createdAt": "created_at", "startedAt": "started_at", "completedAt": "completed_at"}


@pytest.fixture
async def rows(demo_database: Database) -> list[RunRow]:
    async with demo_database.read() as session:
        return list((await session.execute(select(RunRow))).scalars().all())


def _newest_first(rows: list[RunRow]) -> list[str]:
    return [row.id for row in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]


async def _matching(gql: GraphQLClient, run_filter: dict[str, Any]) -> tuple[list[str], int]:
    """Every run the filter lists, over all pages, and the totalCount the first page gives."""
    ids: list[str] = []
    total: int | None = None
    after: str | None = None
    while True:
        body = await gql(RUNS, {"filter": run_filter, "after": after})
        assert "errors" not in body, body["errors"]
        page = body["data"]["runs"]
        total = page["totalCount"] if total is None else total
        assert page["totalCount"] == total
        ids.extend(edge["node"]["id"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return ids, total
        after = page["pageInfo"]["endCursor"]


async def _assert_selects(
    gql: GraphQLClient, run_filter: dict[str, Any], expected: list[RunRow]
) -> None:
    ids, total = await _matching(gql, run_filter)
    assert ids == _newest_first(expected)
    assert total == len(expected)


def _pivot(rows: list[RunRow], column: str) -> datetime:
    """A stored instant in the middle of a column, so that `gt` and `gte` differ."""
    values: list[datetime] = sorted(
        value for row in rows if (value := getattr(row, column)) is not None
    )
    return values[len(values) // 2]


def _error(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None
    assert len(body["errors"]) == 1
    error: dict[str, Any] = body["errors"][0]
    return error


async def test_no_filter_lists_every_run(gql: GraphQLClient, rows: list[RunRow]) -> None:
    await _assert_selects(gql, {}, rows)
    assert len(rows) == DEMO_RUNS


async def test_id_as_a_single_value(gql: GraphQLClient, rows: list[RunRow]) -> None:
    await _assert_selects(gql, {"id": rows[17].id}, [rows[17]])


async def test_id_as_a_list_ignores_unknown_ids(gql: GraphQLClient, rows: list[RunRow]) -> None:
    chosen = [rows[3], rows[50], rows[99]]

    await _assert_selects(gql, {"id": [r.id for r in chosen] + ["run_" + "x" * 20]}, chosen)


async def test_id_in_a_literal(gql: GraphQLClient, rows: list[RunRow]) -> None:
    body = await gql(f'{{ runs(filter: {{id: "{rows[5].id}"}}) {{ edges {{ node {{ id }} }} }} }}')

    assert body["data"]["runs"]["edges"] == [{"node": {"id": rows[5].id}}]


@pytest.mark.parametrize("status", list(RunStatus))
async def test_status_as_a_single_value(
    gql: GraphQLClient, rows: list[RunRow], status: RunStatus
) -> None:
    expected = [row for row in rows if row.status == status.value]
    assert expected

    await _assert_selects(gql, {"status": status.name}, expected)


async def test_status_as_a_list(gql: GraphQLClient, rows: list[RunRow]) -> None:
    wanted = {RunStatus.ERROR.value, RunStatus.CANCELLED.value, RunStatus.PENDING.value}

    await _assert_selects(
        gql,
        {"status": ["ERROR", "CANCELLED", "PENDING"]},
        [row for row in rows if row.status in wanted],
    )


async def test_agent_id(gql: GraphQLClient, rows: list[RunRow]) -> None:
    agents = sorted({row.agent_id for row in rows})
    assert len(agents) > 2

    for agent_id in agents:
        await _assert_selects(
            gql, {"agentId": agent_id}, [row for row in rows if row.agent_id == agent_id]
        )
    await _assert_selects(
        gql, {"agentId": agents[:2]}, [row for row in rows if row.agent_id in agents[:2]]
    )


async def test_thread_id(gql: GraphQLClient, rows: list[RunRow]) -> None:
    threads = sorted({row.thread_id for row in rows})[:5]

    await _assert_selects(
        gql, {"threadId": threads[0]}, [row for row in rows if row.thread_id == threads[0]]
    )
    await _assert_selects(
        gql, {"threadId": threads}, [row for row in rows if row.thread_id in threads]
    )


@pytest.mark.parametrize("bound", list(BOUNDS))
@pytest.mark.parametrize("field", list(COLUMNS))
async def test_time_bound(gql: GraphQLClient, rows: list[RunRow], field: str, bound: str) -> None:
    column = COLUMNS[field]
    pivot = _pivot(rows, column)
    compare = BOUNDS[bound]
    expected = [
        row for row in rows if (value := getattr(row, column)) is not None and compare(value, pivot)
    ]
    assert 0 < len(expected) < DEMO_RUNS

    await _assert_selects(gql, {field: {bound: pivot.isoformat()}}, expected)


@pytest.mark.parametrize("field", list(COLUMNS))
async def test_inclusive_and_exclusive_bounds_differ_by_the_run_at_the_bound(
    gql: GraphQLClient, rows: list[RunRow], field: str
) -> None:
    pivot = _pivot(rows, COLUMNS[field]).isoformat()

    (gt, _), (gte, _) = [await _matching(gql, {field: {b: pivot}}) for b in ("gt", "gte")]
    (lt, _), (lte, _) = [await _matching(gql, {field: {b: pivot}}) for b in ("lt", "lte")]

    assert len(set(gte) - set(gt)) == 1
    assert set(gte) - set(gt) == set(lte) - set(lt)


async def test_a_bound_with_an_offset_means_the_same_instant(
    gql: GraphQLClient, rows: list[RunRow]
) -> None:
    pivot = _pivot(rows, "created_at")
    in_paris = pivot.astimezone(timezone(timedelta(hours=2)))

    assert await _matching(gql, {"createdAt": {"gte": in_paris.isoformat()}}) == await _matching(
        gql, {"createdAt": {"gte": pivot.isoformat()}}
    )


async def test_a_closed_range(gql: GraphQLClient, rows: list[RunRow]) -> None:
    ordered = sorted(rows, key=lambda row: row.created_at)
    low, high = ordered[20].created_at, ordered[40].created_at

    await _assert_selects(
        gql, {"createdAt": {"gte": low.isoformat(), "lt": high.isoformat()}}, ordered[20:40]
    )


async def test_a_range_of_one_instant_with_both_bounds_inclusive(
    gql: GraphQLClient, rows: list[RunRow]
) -> None:
    at = rows[30].created_at.isoformat()

    await _assert_selects(gql, {"createdAt": {"gte": at, "lte": at}}, [rows[30]])


async def test_fields_combine_with_and(gql: GraphQLClient, rows: list[RunRow]) -> None:
    agent_id = rows[0].agent_id
    since = _pivot(rows, "created_at")
    started_before = _pivot(rows, "started_at")
    expected = [
        row
        for row in rows
        if row.status in {"success", "error"}
        and row.agent_id == agent_id
        and row.created_at >= since - timedelta(days=5)
        and row.started_at is not None
        and row.started_at < started_before
    ]
    assert expected

    await _assert_selects(
        gql,
        {
            "status": ["SUCCESS", "ERROR"],
            "agentId": agent_id,
            "createdAt": {"gte": (since - timedelta(days=5)).isoformat()},
            "startedAt": {"lt": started_before.isoformat()},
        },
        expected,
    )


async def test_total_count_respects_the_filter(gql: GraphQLClient, rows: list[RunRow]) -> None:
    body = await gql(
        "{ runs(first: 1, filter: {status: SUCCESS}) { totalCount edges { node { id } } } }"
    )

    connection = body["data"]["runs"]
    assert connection["totalCount"] == sum(row.status == "success" for row in rows)
    assert len(connection["edges"]) == 1


async def test_unstarted_and_unfinished_runs_never_match_time_bounds(
    gql: GraphQLClient, rows: list[RunRow]
) -> None:
    ids, _ = await _matching(gql, {"completedAt": {"gt": "2000-01-01T00:00:00Z"}})

    unfinished = {row.id for row in rows if row.status not in TERMINAL_RUN_STATUSES}
    assert unfinished
    assert not unfinished & set(ids)
    assert len(ids) == DEMO_RUNS - len(unfinished)


async def test_a_filter_on_a_nested_connection(gql: GraphQLClient, rows: list[RunRow]) -> None:
    agent_id = rows[0].agent_id
    expected = [row for row in rows if row.agent_id == agent_id and row.status == "success"]

    body = await gql(AGENT_RUNS, {"id": agent_id, "filter": {"status": "SUCCESS"}})

    connection = body["data"]["agent"]["runs"]
    assert [edge["node"]["id"] for edge in connection["edges"]] == _newest_first(expected)
    assert connection["totalCount"] == len(expected)


@pytest.mark.parametrize(
    "bounds",
    [
        {"gt": "2025-05-20T00:00:00Z", "lt": "2025-05-10T00:00:00Z"},
        {"gte": "2025-05-20T00:00:00Z", "lte": "2025-05-19T23:59:59.999Z"},
        {"gt": "2025-05-20T00:00:00Z", "lte": "2025-05-20T00:00:00Z"},
        {"gte": "2025-05-20T00:00:00Z", "lt": "2025-05-20T02:00:00+02:00"},
    ],
    ids=["gt-after-lt", "gte-after-lte", "gt-equals-lte", "gte-equals-lt-with-offset"],
)
async def test_an_inverted_range_is_refused(gql: GraphQLClient, bounds: dict[str, str]) -> None:
    error = _error(await gql(RUNS, {"filter": {"createdAt": bounds}}))

    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "filter.createdAt"}


@pytest.mark.parametrize("field", ["startedAt", "completedAt"])
async def test_an_inverted_range_names_its_field(gql: GraphQLClient, field: str) -> None:
    bounds = {"gte": "2025-05-20T00:00:00Z", "lt": "2025-05-10T00:00:00Z"}

    error = _error(await gql(RUNS, {"filter": {field: bounds}}))

    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": f"filter.{field}"}


@pytest.mark.parametrize(
    "bounds",
    [
        {"gt": "2025-05-20T00:00:00Z", "gte": "2025-05-21T00:00:00Z"},
        {"lt": "2025-05-20T00:00:00Z", "lte": "2025-05-21T00:00:00Z"},
    ],
    ids=["gt-and-gte", "lt-and-lte"],
)
async def test_both_forms_of_one_bound_are_refused(
    gql: GraphQLClient, bounds: dict[str, str]
) -> None:
    error = _error(await gql(RUNS, {"filter": {"createdAt": bounds}}))

    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "filter.createdAt"}


async def test_an_inverted_range_on_a_nested_connection_is_refused(
    gql: GraphQLClient, rows: list[RunRow]
) -> None:
    bounds = {"gt": "2025-05-20T00:00:00Z", "lt": "2025-05-10T00:00:00Z"}

    body = await gql(AGENT_RUNS, {"id": rows[0].agent_id, "filter": {"createdAt": bounds}})

    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "filter.createdAt"}
    assert error["path"] == ["agent", "runs"]


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2025-13-01T00:00:00Z", "", 20250101],
    ids=["word", "month-13", "empty", "number"],
)
async def test_a_malformed_date_time_in_a_variable_is_bad_user_input(
    gql: GraphQLClient, value: object
) -> None:
    error = _error(await gql(RUNS, {"filter": {"createdAt": {"gt": value}}}))

    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "DateTime" in error["message"]


@pytest.mark.parametrize(
    "literal",
    ['"yesterday"', '"2025-13-01T00:00:00Z"', "20250101"],
    ids=["word", "month-13", "number"],
)
async def test_a_malformed_date_time_in_a_literal_fails_validation(
    gql: GraphQLClient, literal: str
) -> None:
    error = _error(
        await gql(f"{{ runs(filter: {{createdAt: {{gt: {literal}}}}}) {{ totalCount }} }}")
    )

    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_a_date_time_without_a_zone_is_refused(gql: GraphQLClient) -> None:
    in_variable = _error(await gql(RUNS, {"filter": {"createdAt": {"gt": "2025-05-20T00:00:00"}}}))
    in_literal = _error(
        await gql('{ runs(filter: {createdAt: {gt: "2025-05-20T00:00:00"}}) { totalCount } }')
    )

    assert in_variable["extensions"] == {"code": "BAD_USER_INPUT"}
    assert in_literal["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert "zone" in in_variable["message"]
    assert "zone" in in_literal["message"]


async def test_an_unknown_status_literal_fails_validation(gql: GraphQLClient) -> None:
    error = _error(await gql("{ runs(filter: {status: FINISHED}) { totalCount } }"))

    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert "FINISHED" in error["message"]


@pytest.mark.parametrize(
    "value",
    ["FINISHED", ["SUCCESS", "FINISHED"], "success"],
    ids=["single", "in-a-list", "lower-case"],
)
async def test_an_unknown_status_in_a_variable_is_bad_user_input(
    gql: GraphQLClient, value: object
) -> None:
    error = _error(await gql(RUNS, {"filter": {"status": value}}))

    assert error["extensions"] == {"code": "BAD_USER_INPUT"}


async def test_an_unknown_order_literal_fails_validation(gql: GraphQLClient) -> None:
    error = _error(await gql("{ runs(orderBy: NEWEST) { totalCount } }"))

    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


@pytest.mark.parametrize(
    ("filter_literal", "field"),
    [
        ('{id: ["bogus"]}', "filter.id[0]"),
        ('{agentId: ["run_AAAAAAAAAAAAAAAAAAAA"]}', "filter.agentId[0]"),
        ('{threadId: ["thread_AAAAAAAAAAAAAAAAAAAA", "thread_x"]}', "filter.threadId[1]"),
    ],
)
async def test_malformed_ids_in_a_filter_are_refused(
    gql: GraphQLClient, filter_literal: str, field: str
) -> None:
    body = await gql(f"{{ runs(filter: {filter_literal}) {{ totalCount }} }}")
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
