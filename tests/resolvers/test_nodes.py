"""`node`/`nodes` and the single-object root fields: any id, by its prefix."""

import asyncio
from typing import Any

import pytest

from runql.ids import Kind
from runql.settings import Settings
from runql.storage.database import Database
from tests.conftest import GraphQLClient

TYPENAMES = {
    "run": "Run",
    "agent": "Agent",
    "thread": "Thread",
    "mgrp": "MessageGroup",
    "msg": "Message",
    "act": "Actor",
    "cnt": "MessageContent",
    "part": "ContentPart",
    "att": "Attachment",
    "itm": "AttachedItem",
    "err": "RunError",
}

IDS_OF_EVERY_KIND = """
{
  runs(first: 100, filter: {status: [SUCCESS, ERROR]}) {
    edges { node {
      id
      agent { id }
      thread { id }
      errors { id }
      attachedItems { id actor { id } }
      triggerMessageGroup { ...Group }
      messageGroup { ...Group }
    } }
  }
}

fragment Group on MessageGroup {
  id
  messages { id actor { id } content { id parts { id } attachments { id } } }
}
"""

NODE = """
query Node($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Run { threadId }
    ... on Message { messageGroupId }
    ... on MessageContent { messageItemId }
  }
}
"""

NODES = "query Nodes($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"


def _collect(value: Any, found: dict[str, set[str]]) -> None:
    if isinstance(value, dict):
        node_id = value.get("id")
        if isinstance(node_id, str):
            found.setdefault(node_id.split("_", 1)[0], set()).add(node_id)
        for child in value.values():
            _collect(child, found)
    elif isinstance(value, list):
        for child in value:
            _collect(child, found)


async def _ids_by_kind(database: Database) -> dict[str, list[str]]:
    try:
        body = await GraphQLClient(database, Settings())(IDS_OF_EVERY_KIND)
    finally:
        await database.dispose()
    assert "errors" not in body, body["errors"]
    found: dict[str, set[str]] = {}
    _collect(body["data"], found)
    return {prefix: sorted(ids) for prefix, ids in found.items()}


@pytest.fixture(scope="module")
def ids_by_kind(demo_template: str) -> dict[str, list[str]]:
    """Real ids of every kind in the demo data, from nested reads (read once per module)."""
    return asyncio.run(_ids_by_kind(Database.from_url(demo_template)))


def _unknown(prefix: str) -> str:
    return f"{prefix}_{'Z' * 20}"


def test_the_demo_data_has_an_id_of_every_kind(ids_by_kind: dict[str, list[str]]) -> None:
    assert set(ids_by_kind) == set(TYPENAMES)


@pytest.mark.parametrize("prefix", list(TYPENAMES))
async def test_node_resolves_each_kind_to_its_type(
    gql: GraphQLClient, ids_by_kind: dict[str, list[str]], prefix: str
) -> None:
    for node_id in ids_by_kind[prefix][:3]:
        body = await gql(NODE, {"id": node_id})

        assert "errors" not in body, body["errors"]
        assert body["data"]["node"]["__typename"] == TYPENAMES[prefix]
        assert body["data"]["node"]["id"] == node_id


async def test_node_of_a_message_and_its_content_agree(
    gql: GraphQLClient, ids_by_kind: dict[str, list[str]]
) -> None:
    body = await gql(
        "query($id: ID!) { node(id: $id) { ... on Message { id messageGroupId content { id } } } }",
        {"id": ids_by_kind["msg"][0]},
    )
    message = body["data"]["node"]

    content = (await gql(NODE, {"id": message["content"]["id"]}))["data"]["node"]
    group = (await gql(NODE, {"id": message["messageGroupId"]}))["data"]["node"]

    assert content["messageItemId"] == message["id"]
    assert group["__typename"] == "MessageGroup"


async def test_nodes_keeps_order_and_gives_null_for_unknown_ids(
    gql: GraphQLClient, ids_by_kind: dict[str, list[str]]
) -> None:
    known = [ids_by_kind[prefix][-1] for prefix in reversed(list(TYPENAMES))]
    ids: list[str] = []
    expected: list[dict[str, str] | None] = []
    for node_id in known:
        prefix = node_id.split("_", 1)[0]
        ids += [node_id, _unknown(prefix)]
        expected += [{"__typename": TYPENAMES[prefix], "id": node_id}, None]
    ids.append(known[0])
    expected.append(expected[0])

    body = await gql(NODES, {"ids": ids})

    assert "errors" not in body, body["errors"]
    assert body["data"]["nodes"] == expected


async def test_nodes_of_no_ids_is_an_empty_list(gql: GraphQLClient) -> None:
    body = await gql(NODES, {"ids": []})

    assert body["data"] == {"nodes": []}
    assert "errors" not in body


@pytest.mark.parametrize("prefix", [kind.value for kind in Kind])
async def test_an_unknown_well_formed_id_is_null_without_error(
    gql: GraphQLClient, prefix: str
) -> None:
    body = await gql(NODE, {"id": _unknown(prefix)})

    assert body["data"] == {"node": None}
    assert "errors" not in body


MALFORMED = [
    "nope",
    "",
    "run_",
    "run_short",
    "run_" + "a" * 21,
    "RUN_" + "a" * 20,
    "user_" + "a" * 20,
    "run-" + "a" * 20,
    "run_" + "a" * 19 + "!",
    "run_" + "a" * 20 + "\n",
    " run_" + "a" * 20,
    "run_" + "a" * 18 + "-_",
]


@pytest.mark.parametrize("value", MALFORMED)
async def test_node_of_a_malformed_id_is_bad_user_input(gql: GraphQLClient, value: str) -> None:
    body = await gql(NODE, {"id": value})

    assert body["data"] == {"node": None}
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "id"}
    assert error["path"] == ["node"]


async def test_nodes_with_a_malformed_id_is_bad_user_input(
    gql: GraphQLClient, ids_by_kind: dict[str, list[str]]
) -> None:
    body = await gql(NODES, {"ids": [ids_by_kind["run"][0], "nope"]})

    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "ids[1]"}
    assert "nope" in error["message"]


@pytest.mark.parametrize(
    ("field", "wrong"),
    [
        ("run", "agent"),
        ("agent", "run"),
        ("thread", "mgrp"),
        ("messageGroup", "msg"),
        ("actor", "thread"),
    ],
)
async def test_a_root_field_refuses_an_id_of_another_kind(
    gql: GraphQLClient, ids_by_kind: dict[str, list[str]], field: str, wrong: str
) -> None:
    body = await gql(
        f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}", {"id": ids_by_kind[wrong][0]}
    )

    assert body["data"] == {field: None}
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "id"}
    assert f"{wrong}_" in error["message"]


async def test_run_of_a_malformed_id_is_bad_user_input(gql: GraphQLClient) -> None:
    body = await gql('{ run(id: "run_123") { id } }')

    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "id"}


async def test_run_of_an_unknown_id_is_null_without_error(gql: GraphQLClient) -> None:
    body = await gql("query($id: ID!) { run(id: $id) { id } }", {"id": _unknown("run")})

    assert body["data"] == {"run": None}
    assert "errors" not in body


@pytest.mark.parametrize(
    ("field", "prefix"),
    [
        ("run", "run"),
        ("agent", "agent"),
        ("thread", "thread"),
        ("messageGroup", "mgrp"),
        ("actor", "act"),
    ],
)
async def test_a_root_field_finds_its_object(
    gql: GraphQLClient, ids_by_kind: dict[str, list[str]], field: str, prefix: str
) -> None:
    node_id = ids_by_kind[prefix][0]

    body = await gql(f"query($id: ID!) {{ {field}(id: $id) {{ id __typename }} }}", {"id": node_id})

    assert body["data"] == {field: {"id": node_id, "__typename": TYPENAMES[prefix]}}


async def test_nodes_takes_at_most_one_hundred_ids(
    gql: GraphQLClient, ids_by_kind: dict[str, list[str]]
) -> None:
    hundred = [_unknown("run")] * 99 + [ids_by_kind["run"][0]]

    allowed = await gql(NODES, {"ids": hundred})
    refused = await gql(NODES, {"ids": [*hundred, ids_by_kind["run"][1]]})

    assert "errors" not in allowed
    assert allowed["data"]["nodes"][-1] == {"__typename": "Run", "id": ids_by_kind["run"][0]}
    assert refused["data"] is None
    [error] = refused["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "ids"}
    assert "100" in error["message"]
