"""Tenant isolation: another organization's ids answer exactly as missing ones do, in every
query, mutation, subscription and REST endpoint, and counts and lists reveal nothing."""

import re
from typing import Any

import httpx
import pytest

from runql.app import create_app
from runql.auth.keys import create_key
from runql.settings import Settings
from runql.storage.database import Database
from tests.conftest import GraphQLClient
from tests.lifecycle.conftest import row_counts

UNKNOWN = {
    "run": "run_AAAAAAAAAAAAAAAAAAAA",
    "agent": "agent_AAAAAAAAAAAAAAAAAAAA",
    "thread": "thread_AAAAAAAAAAAAAAAAAAAA",
    "mgrp": "mgrp_AAAAAAAAAAAAAAAAAAAA",
    "msg": "msg_AAAAAAAAAAAAAAAAAAAA",
    "act": "act_AAAAAAAAAAAAAAAAAAAA",
    "cnt": "cnt_AAAAAAAAAAAAAAAAAAAA",
    "part": "part_AAAAAAAAAAAAAAAAAAAA",
    "att": "att_AAAAAAAAAAAAAAAAAAAA",
    "itm": "itm_AAAAAAAAAAAAAAAAAAAA",
    "err": "err_AAAAAAAAAAAAAAAAAAAA",
}
IDS = """{ runs(first: 100) { edges { node { id agentId threadId
  messageGroup { id messages { id actor { id } content { id parts { id }
    attachments { id } } } }
  triggerMessageGroup { messages { content { attachments { id } } } }
  errors { id } attachedItems { id } } } } }"""
ID_PATTERN = re.compile(r"\b(run|agent|thread|mgrp|msg|act|cnt|part|att|itm|err)_[A-Za-z0-9]{20}")


def _masked(body: Any) -> str:
    """The body with every id replaced by its kind (and without timing statistics): equal
    bodies reveal the same."""
    if isinstance(body, dict):
        body = {key: value for key, value in body.items() if key != "extensions"}
    return ID_PATTERN.sub(lambda m: f"<{m.group(1)}>", str(body))


@pytest.fixture
async def owner_ids(gql: GraphQLClient) -> dict[str, str]:
    """One real id of every kind, from the demo's (default) organization."""
    found: dict[str, str] = {}
    for match in ID_PATTERN.finditer(str((await gql(IDS))["data"])):
        found.setdefault(match.group(1), match.group(0))
    assert set(found) == set(UNKNOWN)
    return found


@pytest.fixture
async def stranger(demo_database: Database, settings: Settings) -> GraphQLClient:
    key = await create_key(demo_database, "stranger", "acme")
    return GraphQLClient(demo_database, settings, key.row.org_id)


async def test_every_lookup_of_a_foreign_id_answers_as_a_missing_one(
    stranger: GraphQLClient, owner_ids: dict[str, str]
) -> None:
    roots = {
        "run": "run",
        "agent": "agent",
        "thread": "thread",
        "mgrp": "messageGroup",
        "act": "actor",
    }
    for kind, real in owner_ids.items():
        queries = [
            "query($id: ID!) { node(id: $id) { id } }",
            "query($id: ID!) { nodes(ids: [$id]) { id } }",
        ]
        if kind in roots:
            queries.append(f"query($id: ID!) {{ {roots[kind]}(id: $id) {{ id }} }}")
        for query in queries:
            foreign = await stranger(query, {"id": real})
            missing = await stranger(query, {"id": UNKNOWN[kind]})
            assert _masked(foreign) == _masked(missing), (kind, query)
            assert "errors" not in foreign
            assert real not in str(foreign)


async def test_lists_counts_and_filters_show_nothing_foreign(
    stranger: GraphQLClient, owner_ids: dict[str, str]
) -> None:
    body = await stranger(
        """query($run: ID!, $agent: ID!, $thread: ID!) {
             all: runs { totalCount edges { node { id } } }
             byId: runs(filter: {id: [$run]}) { totalCount }
             byAgent: runs(filter: {agentId: [$agent]}) { totalCount }
             byThread: runs(filter: {threadId: [$thread]}) { totalCount }
             agents { totalCount } threads { totalCount }
             agentThreads: threads(agentId: [$agent]) { totalCount } }""",
        {"run": owner_ids["run"], "agent": owner_ids["agent"], "thread": owner_ids["thread"]},
    )
    assert "errors" not in body
    counts = {name: value["totalCount"] for name, value in body["data"].items()}
    assert counts == dict.fromkeys(counts, 0)


async def test_mutations_on_foreign_ids_fail_as_on_missing_ones_and_write_nothing(
    stranger: GraphQLClient, owner_ids: dict[str, str], demo_database: Database
) -> None:
    own = await stranger(
        'mutation { createAgent(input: {name: "Mine", kind: "echo"}) { agent { id } } }'
    )
    own_agent = own["data"]["createAgent"]["agent"]["id"]
    before = await row_counts(demo_database)
    cases = [
        (
            'mutation($id: ID!) { createRun(input: {agentId: $id, content: {text: "x"}}) '
            "{ run { id } } }",
            "agent",
            {},
        ),
        (
            "mutation($id: ID!, $agent: ID!) { createRun(input: {agentId: $agent, threadId: $id, "
            'content: {text: "x"}}) { run { id } } }',
            "thread",
            {"agent": own_agent},
        ),
        ("mutation($id: ID!) { cancelRun(id: $id) { run { id } } }", "run", {}),
        (
            'mutation($id: ID!) { updateAgent(input: {id: $id, name: "x"}) { agent { id } } }',
            "agent",
            {},
        ),
        ("mutation($id: ID!) { archiveAgent(id: $id) { agent { id } } }", "agent", {}),
    ]
    for query, kind, extra in cases:
        foreign = await stranger(query, {"id": owner_ids[kind], **extra})
        missing = await stranger(query, {"id": UNKNOWN[kind], **extra})
        assert foreign["errors"][0]["extensions"]["code"] == "NOT_FOUND", query
        assert _masked(foreign) == _masked(missing), query
    assert await row_counts(demo_database) == before


async def test_rest_answers_foreign_ids_as_missing_ones(
    demo_database: Database, settings: Settings, owner_ids: dict[str, str]
) -> None:
    key = (await create_key(demo_database, "stranger", "acme")).secret
    app = create_app(settings, demo_database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://runql.test",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        foreign = await client.get(f"/runs/{owner_ids['run']}")
        missing = await client.get(f"/runs/{UNKNOWN['run']}")
        listed = await client.get("/runs", params={"id": owner_ids["run"]})
        created = await client.post("/runs", json={"agent_id": owner_ids["agent"], "content": "x"})
        unknown_agent = await client.post(
            "/runs", json={"agent_id": UNKNOWN["agent"], "content": "x"}
        )
    assert foreign.status_code == missing.status_code == 404
    assert _masked(foreign.json()) == _masked(missing.json())
    assert listed.json()["items"] == []
    assert created.status_code == unknown_agent.status_code == 404
    assert _masked(created.json()) == _masked(unknown_agent.json())
