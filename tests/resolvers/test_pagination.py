"""Relay connections over keyset cursors: complete walks, page flags, limits, nested lists."""

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from runql.ids import Kind, new_id
from runql.storage.database import Database
from runql.storage.tables import MessageGroupRow, RunRow
from runql.storage.writes import insert_rows
from tests.conftest import DEMO_RUNS, GraphQLClient

RUNS = """
query Runs($first: Int, $after: String, $last: Int, $before: String,
           $order: CreatedOrder! = CREATED_AT_DESC) {
  runs(first: $first, after: $after, last: $last, before: $before, orderBy: $order) {
    totalCount
    edges { cursor node { id createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""

THREAD_RUNS = """
query ThreadRuns($id: ID!, $first: Int, $after: String) {
  thread(id: $id) {
    runs(first: $first, after: $after) {
      totalCount
      edges { cursor node { id threadId } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""


async def _runs(gql: GraphQLClient, **variables: Any) -> dict[str, Any]:
    body = await gql(RUNS, variables)
    assert "errors" not in body, body["errors"]
    connection: dict[str, Any] = body["data"]["runs"]
    return connection


def _ids(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


async def _run_rows(database: Database) -> list[RunRow]:
    async with database.read() as session:
        return list((await session.execute(select(RunRow))).scalars().all())


def _newest_first(rows: list[RunRow]) -> list[str]:
    return [row.id for row in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]


async def _walk_forward(
    gql: GraphQLClient, size: int, order: str = "CREATED_AT_DESC"
) -> tuple[list[str], list[dict[str, Any]]]:
    ids: list[str] = []
    pages: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = await _runs(gql, first=size, after=after, order=order)
        pages.append(page)
        ids.extend(_ids(page))
        if not page["pageInfo"]["hasNextPage"]:
            return ids, pages
        after = page["pageInfo"]["endCursor"]
        assert len(pages) <= DEMO_RUNS, "the walk does not end"


async def _walk_backward(
    gql: GraphQLClient, size: int, order: str = "CREATED_AT_DESC"
) -> list[str]:
    ids: list[str] = []
    before: str | None = None
    for _ in range(DEMO_RUNS + 1):
        page = await _runs(gql, last=size, before=before, order=order)
        ids[:0] = _ids(page)
        if not page["pageInfo"]["hasPreviousPage"]:
            return ids
        before = page["pageInfo"]["startCursor"]
    raise AssertionError("the walk does not end")


async def _rest_of_walk(gql: GraphQLClient, page: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    while page["pageInfo"]["hasNextPage"]:
        page = await _runs(gql, first=10, after=page["pageInfo"]["endCursor"])
        ids.extend(_ids(page))
    return ids


def _new_run(template: RunRow, created_at: datetime) -> RunRow:
    return RunRow(
        id=new_id(Kind.RUN),
        org_id=template.org_id,
        agent_id=template.agent_id,
        thread_id=template.thread_id,
        trigger_message_group_id=template.trigger_message_group_id,
        status="pending",
        created_at=created_at,
    )


async def _insert(database: Database, rows: list[Any]) -> None:
    async with database.write() as session:
        await insert_rows(session, rows)


async def test_walking_forward_gives_every_run_once_newest_first(
    gql: GraphQLClient, demo_database: Database
) -> None:
    expected = _newest_first(await _run_rows(demo_database))

    ids, pages = await _walk_forward(gql, 7)

    assert ids == expected
    assert len(set(ids)) == DEMO_RUNS
    assert all(page["totalCount"] == DEMO_RUNS for page in pages)
    assert [len(page["edges"]) for page in pages] == [7] * 17 + [1]


async def test_walking_backward_gives_the_same_runs_in_the_same_order(
    gql: GraphQLClient, demo_database: Database
) -> None:
    expected = _newest_first(await _run_rows(demo_database))

    assert await _walk_backward(gql, 9) == expected


async def test_created_at_asc_walks_oldest_first_both_ways(
    gql: GraphQLClient, demo_database: Database
) -> None:
    oldest_first = _newest_first(await _run_rows(demo_database))[::-1]

    forward, _ = await _walk_forward(gql, 11, order="CREATED_AT_ASC")
    backward = await _walk_backward(gql, 11, order="CREATED_AT_ASC")

    assert forward == oldest_first
    assert backward == oldest_first


async def test_page_info_at_the_start_of_the_list(gql: GraphQLClient) -> None:
    page = await _runs(gql, first=5)

    info = page["pageInfo"]
    assert info["hasNextPage"] is True
    assert info["hasPreviousPage"] is False
    assert info["startCursor"] == page["edges"][0]["cursor"]
    assert info["endCursor"] == page["edges"][-1]["cursor"]


async def test_page_info_at_the_end_of_the_list(gql: GraphQLClient) -> None:
    page = await _runs(gql, last=5)

    info = page["pageInfo"]
    assert info["hasNextPage"] is False
    assert info["hasPreviousPage"] is True
    assert info["startCursor"] == page["edges"][0]["cursor"]
    assert info["endCursor"] == page["edges"][-1]["cursor"]


async def test_page_info_in_the_middle_of_the_list(gql: GraphQLClient) -> None:
    first = await _runs(gql, first=5)
    middle = await _runs(gql, first=5, after=first["pageInfo"]["endCursor"])
    earlier = await _runs(gql, last=5, before=middle["pageInfo"]["startCursor"])

    assert middle["pageInfo"]["hasNextPage"] is True
    assert middle["pageInfo"]["hasPreviousPage"] is True
    assert earlier == first


async def test_a_page_that_reaches_the_end_exactly_has_no_next_page(gql: GraphQLClient) -> None:
    first = await _runs(gql, first=DEMO_RUNS - 20)
    rest = await _runs(gql, first=20, after=first["pageInfo"]["endCursor"])

    assert len(rest["edges"]) == 20
    assert rest["pageInfo"]["hasNextPage"] is False
    assert rest["pageInfo"]["hasPreviousPage"] is True


async def test_an_empty_list_has_no_pages_and_no_cursors(gql_empty: GraphQLClient) -> None:
    page = await _runs(gql_empty, first=5)

    assert page == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
    }


async def test_page_size_defaults_to_twenty_both_ways(
    gql: GraphQLClient, demo_database: Database
) -> None:
    expected = _newest_first(await _run_rows(demo_database))

    first = await _runs(gql)
    second = await _runs(gql, after=first["pageInfo"]["endCursor"])
    backward = await _runs(gql, before=second["pageInfo"]["endCursor"])

    assert _ids(first) == expected[:20]
    assert _ids(second) == expected[20:40]
    assert _ids(backward) == expected[19:39]


async def test_cursors_stay_correct_when_runs_are_inserted_between_pages(
    gql: GraphQLClient, demo_database: Database
) -> None:
    rows = await _run_rows(demo_database)
    expected = _newest_first(rows)
    first = await _runs(gql, first=10)
    boundary = next(row for row in rows if row.id == expected[9])
    newest = max(row.created_at for row in rows)
    oldest = min(row.created_at for row in rows)
    newer = [_new_run(rows[0], newest + timedelta(minutes=n)) for n in (1, 2, 3)]
    older = [_new_run(rows[0], oldest - timedelta(minutes=n)) for n in (1, 2)]
    beside = [_new_run(rows[0], boundary.created_at - timedelta(microseconds=1))]
    await _insert(demo_database, [*newer, *older, *beside])

    second = await _runs(gql, first=10, after=first["pageInfo"]["endCursor"])
    rest = await _rest_of_walk(gql, second)

    before_insert = set(expected)
    seen = _ids(second) + rest
    assert [run_id for run_id in seen if run_id in before_insert] == expected[10:]
    assert not set(seen) & set(_ids(first))
    assert not set(seen) & {run.id for run in newer}
    assert set(seen) >= {run.id for run in [*older, *beside]}
    assert _ids(second)[0] == beside[0].id
    assert second["totalCount"] == DEMO_RUNS + 6


async def test_cursors_stay_correct_backward_when_runs_are_inserted(
    gql: GraphQLClient, demo_database: Database
) -> None:
    rows = await _run_rows(demo_database)
    expected = _newest_first(rows)
    last = await _runs(gql, last=10)
    newest = max(row.created_at for row in rows)
    oldest = min(row.created_at for row in rows)
    await _insert(
        demo_database,
        [
            _new_run(rows[0], newest + timedelta(minutes=1)),
            _new_run(rows[0], oldest - timedelta(minutes=1)),
        ],
    )

    previous = await _runs(gql, last=10, before=last["pageInfo"]["startCursor"])

    assert _ids(last) == expected[-10:]
    assert _ids(previous) == expected[-20:-10]


async def test_ties_on_created_at_are_broken_by_id(
    gql: GraphQLClient, demo_database: Database
) -> None:
    rows = await _run_rows(demo_database)
    middle = sorted(rows, key=lambda row: row.created_at)[60]
    tied = [_new_run(rows[0], middle.created_at) for _ in range(6)]
    await _insert(demo_database, tied)
    expected = _newest_first([*rows, *tied])
    tied_ids = {run.id for run in tied}

    forward, _ = await _walk_forward(gql, 2)
    backward = await _walk_backward(gql, 3)
    ascending, _ = await _walk_forward(gql, 4, order="CREATED_AT_ASC")

    assert forward == expected
    assert backward == expected
    assert ascending == expected[::-1]
    in_walk = [run_id for run_id in forward if run_id in tied_ids | {middle.id}]
    assert in_walk == sorted(in_walk, reverse=True)


async def test_first_zero_gives_no_edges_but_counts_everything(gql: GraphQLClient) -> None:
    page = await _runs(gql, first=0)

    assert page["edges"] == []
    assert page["totalCount"] == DEMO_RUNS
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["pageInfo"]["startCursor"] is None
    assert page["pageInfo"]["endCursor"] is None


async def test_first_one_hundred_is_allowed(gql: GraphQLClient) -> None:
    page = await _runs(gql, first=100)

    assert len(page["edges"]) == 100
    assert page["pageInfo"]["hasNextPage"] is True


def _only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None
    assert len(body["errors"]) == 1
    error: dict[str, Any] = body["errors"][0]
    return error


@pytest.mark.parametrize("name", ["first", "last"])
async def test_a_page_over_one_hundred_is_refused_naming_the_cap(
    gql: GraphQLClient, name: str
) -> None:
    error = _only_error(await gql(RUNS, {name: 101}))

    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": name}
    assert "100" in error["message"]
    assert error["path"] == ["runs"]


@pytest.mark.parametrize("name", ["first", "last"])
async def test_a_negative_page_size_is_refused(gql: GraphQLClient, name: str) -> None:
    error = _only_error(await gql(RUNS, {name: -1}))

    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": name}


async def test_first_and_last_together_are_refused(gql: GraphQLClient) -> None:
    error = _only_error(await gql(RUNS, {"first": 5, "last": 5}))

    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] in {"first", "last"}


async def test_after_and_before_together_are_refused(gql: GraphQLClient) -> None:
    cursor = (await _runs(gql, first=2))["pageInfo"]["endCursor"]

    error = _only_error(await gql(RUNS, {"after": cursor, "before": cursor}))

    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] in {"after", "before"}


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        "",
        "MjAyNS0wNi0wMQ",
        "bm90IGEgZGF0ZXxydW5feA",
        "MjAyNS0wNi0wMVQwOTowODowMnxydW5feA",
    ],
    ids=["word", "symbols", "empty", "date-only", "not-a-date", "no-zone"],
)
async def test_a_cursor_this_server_did_not_issue_is_refused(
    gql: GraphQLClient, cursor: str
) -> None:
    error = _only_error(await gql(RUNS, {"first": 5, "after": cursor}))

    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}


async def test_a_garbage_before_cursor_names_before(gql: GraphQLClient) -> None:
    error = _only_error(await gql(RUNS, {"last": 5, "before": "garbage"}))

    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "before"}


async def test_a_garbage_cursor_in_a_nested_connection_is_refused(
    gql: GraphQLClient, demo_database: Database
) -> None:
    thread_id = (await _run_rows(demo_database))[0].thread_id

    body = await gql(THREAD_RUNS, {"id": thread_id, "first": 2, "after": "garbage"})

    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}
    assert error["path"] == ["thread", "runs"]


NESTED = """
query Nested($runs: Int, $groups: Int, $after: String) {
  threads(first: 100) {
    edges { node { id ...ThreadLists } }
  }
  agents(first: 100) {
    edges { node { id runs(first: $runs, after: $after) { ...RunPage } } }
  }
}

query OneThread($id: ID!, $runs: Int, $groups: Int, $after: String) {
  thread(id: $id) { id ...ThreadLists }
}

query OneAgent($id: ID!, $runs: Int, $after: String) {
  agent(id: $id) { id runs(first: $runs, after: $after) { ...RunPage } }
}

fragment ThreadLists on Thread {
  runs(first: $runs, after: $after) { ...RunPage }
  messageGroups(first: $groups) {
    totalCount
    edges { cursor node { id threadId } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}

fragment RunPage on RunConnection {
  totalCount
  edges { cursor node { id threadId agentId } }
  pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
}
"""


async def _nested(gql: GraphQLClient, **variables: Any) -> dict[str, Any]:
    body = await gql(NESTED, variables, operation_name="Nested")
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


async def _alone(gql: GraphQLClient, operation: str, **variables: Any) -> dict[str, Any]:
    body = await gql(NESTED, variables, operation_name=operation)
    assert "errors" not in body, body["errors"]
    parent: dict[str, Any] = next(iter(body["data"].values()))
    return parent


async def _assert_each_parent_matches_its_own_fetch(
    gql: GraphQLClient, **variables: Any
) -> dict[str, Any]:
    together = await _nested(gql, **variables)
    for edge in together["threads"]["edges"]:
        assert edge["node"] == await _alone(gql, "OneThread", id=edge["node"]["id"], **variables)
    for edge in together["agents"]["edges"]:
        assert edge["node"] == await _alone(
            gql, "OneAgent", id=edge["node"]["id"], runs=variables["runs"], after=variables["after"]
        )
    return together


async def test_nested_connections_page_per_parent(
    gql: GraphQLClient, demo_database: Database
) -> None:
    rows = await _run_rows(demo_database)

    together = await _assert_each_parent_matches_its_own_fetch(gql, runs=2, groups=3, after=None)

    threads = [edge["node"] for edge in together["threads"]["edges"]]
    assert len(threads) == len({row.thread_id for row in rows})
    for thread in threads:
        mine = _newest_first([row for row in rows if row.thread_id == thread["id"]])
        assert _ids(thread["runs"]) == mine[:2]
        assert thread["runs"]["totalCount"] == len(mine)
        assert thread["runs"]["pageInfo"]["hasNextPage"] is (len(mine) > 2)
        assert thread["runs"]["pageInfo"]["hasPreviousPage"] is False
    for agent in (edge["node"] for edge in together["agents"]["edges"]):
        mine = _newest_first([row for row in rows if row.agent_id == agent["id"]])
        assert _ids(agent["runs"]) == mine[:2]
        assert agent["runs"]["totalCount"] == len(mine)


async def test_nested_connections_with_a_cursor_page_per_parent(
    gql: GraphQLClient, demo_database: Database
) -> None:
    rows = await _run_rows(demo_database)
    thread_id = max(
        {row.thread_id for row in rows}, key=lambda tid: sum(row.thread_id == tid for row in rows)
    )
    mine = _newest_first([row for row in rows if row.thread_id == thread_id])
    first = (await _alone(gql, "OneThread", id=thread_id, runs=1, groups=1, after=None))["runs"]

    together = await _assert_each_parent_matches_its_own_fetch(
        gql, runs=2, groups=1, after=first["pageInfo"]["endCursor"]
    )

    thread = next(
        edge["node"] for edge in together["threads"]["edges"] if edge["node"]["id"] == thread_id
    )
    assert len(mine) >= 3
    assert _ids(thread["runs"]) == mine[1:3]
    assert thread["runs"]["pageInfo"]["hasPreviousPage"] is True


async def test_message_groups_of_each_thread_are_oldest_first(
    gql: GraphQLClient, demo_database: Database
) -> None:
    async with demo_database.read() as session:
        groups = list((await session.execute(select(MessageGroupRow))).scalars().all())

    together = await _nested(gql, runs=1, groups=100, after=None)

    for edge in together["threads"]["edges"]:
        thread = edge["node"]
        mine = sorted(
            (g for g in groups if g.thread_id == thread["id"]), key=lambda g: (g.created_at, g.id)
        )
        assert _ids(thread["messageGroups"]) == [g.id for g in mine]
        assert thread["messageGroups"]["totalCount"] == len(mine)
        assert {e["node"]["threadId"] for e in thread["messageGroups"]["edges"]} == {thread["id"]}


async def test_walking_one_thread_runs_page_by_page(
    gql: GraphQLClient, demo_database: Database
) -> None:
    rows = await _run_rows(demo_database)
    thread_id = max(
        {row.thread_id for row in rows}, key=lambda tid: sum(row.thread_id == tid for row in rows)
    )
    expected = _newest_first([row for row in rows if row.thread_id == thread_id])
    seen: list[str] = []
    after: str | None = None
    for _ in expected:
        body = await gql(THREAD_RUNS, {"id": thread_id, "first": 1, "after": after})
        page = body["data"]["thread"]["runs"]
        seen.extend(_ids(page))
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break

    assert seen == expected
