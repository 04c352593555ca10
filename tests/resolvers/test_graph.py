"""The run graph's links agree both ways, and its times and DateTimes are well formed."""

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from runql.enums import TERMINAL_RUN_STATUSES, RunStatus
from runql.ids import Kind, new_id
from runql.settings import Settings
from runql.storage.database import Database
from runql.storage.tables import (
    DEFAULT_ORG_ID,
    AttachedItemRow,
    AttachmentRow,
    ContentPartRow,
    MessageRow,
    RunRow,
)
from runql.storage.writes import insert_rows
from tests.conftest import DEMO_RUNS, GraphQLClient

DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
TERMINAL = {status.name for status in TERMINAL_RUN_STATUSES}

GRAPH = """
query Graph($after: String) {
  runs(first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      id status agentId threadId triggerMessageGroupId messageGroupId
      createdAt startedAt completedAt
      agent { id createdAt updatedAt }
      thread { id agentId createdAt updatedAt }
      messageGroup { ...Group }
      triggerMessageGroup { ...Group }
      errors { id runId createdAt run { id } }
      attachedItems { id runId createdAt actor { id createdAt updatedAt } run { id } }
    } }
  }
}

fragment Group on MessageGroup {
  id threadId createdAt
  run { id }
  thread { id }
  messages {
    id messageGroupId threadId createdAt
    messageGroup { id }
    actor { id createdAt updatedAt }
    content { id messageItemId parts { id } attachments { id } }
  }
}
"""

PARENT_RUNS = """
query ParentRuns {
  threads(first: 100) { edges { node { id runs(first: 100) { totalCount
    edges { node { id threadId } } } } } }
  agents(first: 100) { edges { node { id runs(first: 100) { totalCount
    edges { node { id agentId } } } } } }
}
"""


async def _all_runs(gql: GraphQLClient) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        body = await gql(GRAPH, {"after": after})
        assert "errors" not in body, body["errors"]
        page = body["data"]["runs"]
        runs.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return runs
        after = page["pageInfo"]["endCursor"]


async def _read_runs(database: Database) -> list[dict[str, Any]]:
    try:
        return await _all_runs(GraphQLClient(database, Settings()))
    finally:
        await database.dispose()


@pytest.fixture(scope="module")
def runs(demo_template: str) -> list[dict[str, Any]]:
    """Every demo run with its graph, read once per module from the template (only read)."""
    found = asyncio.run(_read_runs(Database.from_url(demo_template)))
    assert len(found) == DEMO_RUNS
    return found


def _groups(runs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for run in runs:
        yield run["triggerMessageGroup"]
        if run["messageGroup"] is not None:
            yield run["messageGroup"]


def _messages(runs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for group in _groups(runs):
        for message in group["messages"]:
            yield group, message


def _date_times(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            if key.endswith("At") and child is not None:
                yield child
            else:
                yield from _date_times(child)
    elif isinstance(value, list):
        for child in value:
            yield from _date_times(child)


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_run_is_the_run_of_the_group_it_wrote(runs: list[dict[str, Any]]) -> None:
    written = [run for run in runs if run["messageGroup"] is not None]
    assert written

    for run in written:
        assert run["messageGroup"]["id"] == run["messageGroupId"]
        assert run["messageGroup"]["run"] == {"id": run["id"]}
        assert run["messageGroup"]["threadId"] == run["threadId"]
        assert run["messageGroup"]["thread"] == {"id": run["threadId"]}
    assert all(run["messageGroupId"] is None for run in runs if run["messageGroup"] is None)


async def test_a_run_is_the_run_of_the_group_that_triggered_it(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        trigger = run["triggerMessageGroup"]
        assert trigger["id"] == run["triggerMessageGroupId"]
        assert trigger["run"] == {"id": run["id"]}
        assert trigger["threadId"] == run["threadId"]


async def test_a_run_links_to_its_agent_and_thread(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        assert run["agent"]["id"] == run["agentId"]
        assert run["thread"]["id"] == run["threadId"]
        assert run["thread"]["agentId"] == run["agentId"]


async def test_a_message_links_back_to_its_group(runs: list[dict[str, Any]]) -> None:
    pairs = list(_messages(runs))
    assert pairs

    for group, message in pairs:
        assert message["messageGroupId"] == group["id"]
        assert message["messageGroup"] == {"id": group["id"]}
        assert message["threadId"] == group["threadId"]


async def test_message_content_names_its_message(runs: list[dict[str, Any]]) -> None:
    contents = [(message, message["content"]) for _, message in _messages(runs)]

    assert all(content is not None for _, content in contents)
    for message, content in contents:
        assert content["messageItemId"] == message["id"]
        assert content["parts"]


async def test_messages_are_in_stored_order(
    runs: list[dict[str, Any]], demo_database: Database
) -> None:
    async with demo_database.read() as session:
        stored = list((await session.execute(select(MessageRow))).scalars().all())

    for group in _groups(runs):
        mine = sorted(
            (m for m in stored if m.message_group_id == group["id"]),
            key=lambda m: (m.position, m.id),
        )
        assert [m["id"] for m in group["messages"]] == [m.id for m in mine]


async def test_parts_and_attachments_are_ordered_by_position(
    gql: GraphQLClient, demo_database: Database
) -> None:
    async with demo_database.read() as session:
        message = (
            (
                await session.execute(
                    select(MessageRow).order_by(MessageRow.created_at).limit(1)  # type: ignore[arg-type]
                )
            )
            .scalars()
            .one()
        )
    content_id = (
        await gql(
            "query($id: ID!) { node(id: $id) { ... on Message { content { id } } } }",
            {"id": message.id},
        )
    )["data"]["node"]["content"]["id"]
    positions = [7, 3, 11, 5, 9]
    parts = [
        ContentPartRow(
            id=new_id(Kind.PART),
            org_id=DEFAULT_ORG_ID,
            content_id=content_id,
            position=p,
            type="text",
            text=f"part {p}",
        )
        for p in positions
    ]
    attachments = [
        AttachmentRow(
            id=new_id(Kind.ATTACHMENT),
            org_id=DEFAULT_ORG_ID,
            content_id=content_id,
            position=p,
            type="link",
            url=f"https://example.com/{p}",
        )
        for p in positions
    ]
    async with demo_database.write() as session:
        await insert_rows(session, [*parts, *attachments])

    body = await gql(
        "query($id: ID!) { node(id: $id) { ... on MessageContent { "
        "parts { id text } attachments { id url } } } }",
        {"id": content_id},
    )

    content = body["data"]["node"]
    assert [p["text"] for p in content["parts"][-5:]] == [f"part {p}" for p in sorted(positions)]
    assert [p["id"] for p in content["parts"][-5:]] == [
        part.id for part in sorted(parts, key=lambda part: part.position)
    ]
    urls = [a["url"] for a in content["attachments"] if a["url"].startswith("https://example")]
    assert urls == [f"https://example.com/{p}" for p in sorted(positions)]


async def test_attached_items_link_to_their_actor_and_run(
    runs: list[dict[str, Any]], demo_database: Database
) -> None:
    async with demo_database.read() as session:
        stored = {
            row.id: row for row in (await session.execute(select(AttachedItemRow))).scalars().all()
        }
    items = [(run, item) for run in runs for item in run["attachedItems"]]
    assert items
    assert len(items) == len(stored)

    for run, item in items:
        assert item["runId"] == run["id"]
        assert item["run"] == {"id": run["id"]}
        actor_id = stored[item["id"]].actor_id
        assert (item["actor"] or {}).get("id") == actor_id


async def test_run_errors_link_to_their_run(runs: list[dict[str, Any]]) -> None:
    errors = [(run, error) for run in runs for error in run["errors"]]
    assert errors

    for run, error in errors:
        assert error["runId"] == run["id"]
        assert error["run"] == {"id": run["id"]}
    assert {run["status"] for run, _ in errors} == {RunStatus.ERROR.name}


async def test_thread_and_agent_runs_belong_to_their_parent(
    gql: GraphQLClient, demo_database: Database
) -> None:
    async with demo_database.read() as session:
        stored = list((await session.execute(select(RunRow))).scalars().all())

    body = await gql(PARENT_RUNS)

    assert "errors" not in body, body["errors"]
    for edge in body["data"]["threads"]["edges"]:
        thread = edge["node"]
        run_ids = {e["node"]["id"] for e in thread["runs"]["edges"]}
        assert {e["node"]["threadId"] for e in thread["runs"]["edges"]} == {thread["id"]}
        assert run_ids == {row.id for row in stored if row.thread_id == thread["id"]}
    agent_runs = 0
    for edge in body["data"]["agents"]["edges"]:
        agent = edge["node"]
        assert {e["node"]["agentId"] for e in agent["runs"]["edges"]} <= {agent["id"]}
        assert agent["runs"]["totalCount"] == sum(row.agent_id == agent["id"] for row in stored)
        agent_runs += agent["runs"]["totalCount"]
    assert agent_runs == DEMO_RUNS


async def test_run_times_are_in_order(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        created = _instant(run["createdAt"])
        if run["startedAt"] is not None:
            assert created <= _instant(run["startedAt"])
        if run["completedAt"] is not None:
            assert _instant(run["startedAt"] or run["createdAt"]) <= _instant(run["completedAt"])


async def test_times_match_the_status(runs: list[dict[str, Any]]) -> None:
    statuses = {run["status"] for run in runs}
    assert statuses == {status.name for status in RunStatus}

    for run in runs:
        if run["status"] == RunStatus.PENDING.name:
            assert run["startedAt"] is None
        if run["status"] == RunStatus.RUNNING.name:
            assert run["startedAt"] is not None
        assert (run["completedAt"] is not None) == (run["status"] in TERMINAL)


async def test_date_times_are_utc_with_milliseconds(
    runs: list[dict[str, Any]], demo_database: Database
) -> None:
    values = list(_date_times(runs))
    assert len(values) > 5 * DEMO_RUNS

    assert [value for value in values if not DATE_TIME.fullmatch(value)] == []
    async with demo_database.read() as session:
        stored = {row.id: row for row in (await session.execute(select(RunRow))).scalars()}
    for run in runs:
        expected = stored[run["id"]].created_at.isoformat(timespec="milliseconds")
        assert run["createdAt"] == expected.replace("+00:00", "Z")
