"""Mutations over GraphQL: payloads, codes and fields of refusals, nothing written on error."""

from typing import Any

import pytest

from runql.storage.database import Database
from tests.conftest import GraphQLClient
from tests.lifecycle.conftest import row_counts

CREATE_AGENT = """mutation($input: CreateAgentInput!) {
  createAgent(input: $input) { agent { id name kind config archivedAt } } }"""
CREATE_RUN = """mutation($input: CreateRunInput!) {
  createRun(input: $input) { run { id status agentId threadId language country timezone metadata
    rawInputs startedAt completedAt agent { name }
    triggerMessageGroup { type messages { actor { type } content { parts { type text }
      attachments { type url caption } } } } } } }"""
CANCEL_RUN = "mutation($id: ID!) { cancelRun(id: $id) { run { id status completedAt } } }"


@pytest.fixture
async def agent_id(gql_empty: GraphQLClient) -> str:
    body = await gql_empty(
        CREATE_AGENT, {"input": {"name": "Echo", "kind": "echo", "config": {"delay_ms": 0}}}
    )
    assert "errors" not in body, body
    agent = body["data"]["createAgent"]["agent"]
    assert agent["config"] == {"delay_ms": 0}
    return str(agent["id"])


def _error(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("errors"), body
    error: dict[str, Any] = body["errors"][0]
    return error


async def test_create_run_returns_the_run_with_nested_data(
    gql_empty: GraphQLClient, agent_id: str
) -> None:
    body = await gql_empty(
        CREATE_RUN,
        {
            "input": {
                "agentId": agent_id,
                "content": {"text": "Hello, world!"},
                "language": "en",
                "country": "US",
                "timezone": "America/New_York",
                "metadata": {"k": "v"},
                "rawInputs": {"text": "Hello, world!"},
            }
        },
    )
    assert "errors" not in body, body
    run = body["data"]["createRun"]["run"]
    assert run["status"] == "PENDING"
    assert (run["language"], run["country"], run["timezone"]) == ("en", "US", "America/New_York")
    assert run["agent"] == {"name": "Echo"}
    message = run["triggerMessageGroup"]["messages"][0]
    assert message["actor"]["type"] == "USER"
    assert message["content"]["parts"] == [{"type": "TEXT", "text": "Hello, world!"}]


async def test_structured_content(gql_empty: GraphQLClient, agent_id: str) -> None:
    body = await gql_empty(
        CREATE_RUN,
        {
            "input": {
                "agentId": agent_id,
                "content": {
                    "structured": {
                        "parts": [{"text": "# Title", "type": "MARKDOWN"}],
                        "attachments": [
                            {"type": "LINK", "url": "https://example.com", "caption": "a page"}
                        ],
                    }
                },
            }
        },
    )
    content = body["data"]["createRun"]["run"]["triggerMessageGroup"]["messages"][0]["content"]
    assert content["parts"] == [{"type": "MARKDOWN", "text": "# Title"}]
    assert content["attachments"] == [
        {"type": "LINK", "url": "https://example.com", "caption": "a page"}
    ]


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"agentId": "agent_AAAAAAAAAAAAAAAAAAAA"}, "NOT_FOUND", "agentId"),
        ({"agentId": "nope"}, "BAD_USER_INPUT", "agentId"),
        ({"threadId": "thread_AAAAAAAAAAAAAAAAAAAA"}, "NOT_FOUND", "threadId"),
        ({"content": {"text": ""}}, "BAD_USER_INPUT", "content"),
        ({"language": "english!"}, "BAD_USER_INPUT", "language"),
        ({"country": "ZZ"}, "BAD_USER_INPUT", "country"),
        ({"timezone": "Nowhere/Land"}, "BAD_USER_INPUT", "timezone"),
        ({"metadata": "not an object"}, "BAD_USER_INPUT", "metadata"),
    ],
)
async def test_refused_runs_have_a_code_and_a_field_and_write_nothing(
    gql_empty: GraphQLClient,
    database: Database,
    agent_id: str,
    fields: dict[str, Any],
    code: str,
    field: str,
) -> None:
    before = await row_counts(database)
    body = await gql_empty(
        CREATE_RUN, {"input": {"agentId": agent_id, "content": {"text": "hi"}, **fields}}
    )
    error = _error(body)
    assert error["extensions"]["code"] == code
    assert error["extensions"]["field"] == field
    assert await row_counts(database) == before


# RFC 5646 section 2.1.1: language lower case, script title case, region upper case, and
# lower case from a singleton on (extensions, private use).
CANONICAL_LANGUAGES = [
    ("EN-gb", "en-GB"),
    ("zh-hant-tw", "zh-Hant-TW"),
    ("EN", "en"),
    ("sgn-be-fr", "sgn-BE-FR"),
    ("AZ-latn-X-LATN", "az-Latn-x-latn"),
    ("es-419", "es-419"),
    ("de-ch-1996", "de-CH-1996"),
]


@pytest.mark.parametrize(("given", "canonical"), CANONICAL_LANGUAGES)
async def test_language_is_stored_in_canonical_case(
    gql_empty: GraphQLClient, agent_id: str, given: str, canonical: str
) -> None:
    body = await gql_empty(
        CREATE_RUN, {"input": {"agentId": agent_id, "content": {"text": "hi"}, "language": given}}
    )
    assert "errors" not in body, body
    run = body["data"]["createRun"]["run"]
    assert run["language"] == canonical
    read = await gql_empty("query($id: ID!) { run(id: $id) { language } }", {"id": run["id"]})
    assert read["data"]["run"]["language"] == canonical


async def test_content_takes_exactly_one_form(gql_empty: GraphQLClient, agent_id: str) -> None:
    body = await gql_empty(
        CREATE_RUN,
        {
            "input": {
                "agentId": agent_id,
                "content": {"text": "hi", "structured": {"parts": [{"text": "hi"}]}},
            }
        },
    )
    error = _error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "exactly one key" in error["message"]


async def test_idempotency_key_over_graphql(gql_empty: GraphQLClient, agent_id: str) -> None:
    variables = {"input": {"agentId": agent_id, "content": {"text": "hi"}, "idempotencyKey": "k-1"}}
    first = await gql_empty(CREATE_RUN, variables)
    again = await gql_empty(CREATE_RUN, variables)
    assert again["data"]["createRun"]["run"]["id"] == first["data"]["createRun"]["run"]["id"]
    variables["input"]["content"] = {"text": "changed"}
    error = _error(await gql_empty(CREATE_RUN, variables))
    assert (error["extensions"]["code"], error["extensions"]["field"]) == (
        "CONFLICT",
        "idempotencyKey",
    )


async def test_cancel_run(gql_empty: GraphQLClient, agent_id: str) -> None:
    run = await gql_empty(CREATE_RUN, {"input": {"agentId": agent_id, "content": {"text": "hi"}}})
    run_id = run["data"]["createRun"]["run"]["id"]
    cancelled = (await gql_empty(CANCEL_RUN, {"id": run_id}))["data"]["cancelRun"]["run"]
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["completedAt"] is not None
    again = await gql_empty(CANCEL_RUN, {"id": run_id})
    assert again["data"]["cancelRun"]["run"]["status"] == "CANCELLED"
    missing = _error(await gql_empty(CANCEL_RUN, {"id": "run_AAAAAAAAAAAAAAAAAAAA"}))
    assert missing["extensions"]["code"] == "NOT_FOUND"


async def test_unknown_agent_kind_lists_the_known_ones(gql_empty: GraphQLClient) -> None:
    error = _error(await gql_empty(CREATE_AGENT, {"input": {"name": "X", "kind": "oracle"}}))
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "kind"}
    assert "echo" in error["message"]
    assert "webhook" in error["message"]


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("echo", {"delay_ms": -1}),
        ("echo", {"speed": 3}),
        ("webhook", {}),
        ("webhook", {"url": "not a url"}),
    ],
)
async def test_agent_config_is_checked_by_its_kind(
    gql_empty: GraphQLClient, kind: str, config: dict[str, Any]
) -> None:
    error = _error(
        await gql_empty(CREATE_AGENT, {"input": {"name": "X", "kind": kind, "config": config}})
    )
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "config"}


async def test_update_and_archive_agent(gql_empty: GraphQLClient, agent_id: str) -> None:
    updated = await gql_empty(
        """mutation($id: ID!) { updateAgent(input: {id: $id, name: "Parrot",
             config: {delay_ms: 10}}) { agent { name config } } }""",
        {"id": agent_id},
    )
    assert updated["data"]["updateAgent"]["agent"] == {"name": "Parrot", "config": {"delay_ms": 10}}
    archived = await gql_empty(
        "mutation($id: ID!) { archiveAgent(id: $id) { agent { archivedAt } } }", {"id": agent_id}
    )
    assert archived["data"]["archiveAgent"]["agent"]["archivedAt"] is not None
    refused = _error(
        await gql_empty(CREATE_RUN, {"input": {"agentId": agent_id, "content": {"text": "hi"}}})
    )
    assert (refused["extensions"]["code"], refused["extensions"]["field"]) == (
        "CONFLICT",
        "agentId",
    )


async def test_agent_config_hides_secrets(gql_empty: GraphQLClient) -> None:
    body = await gql_empty(
        CREATE_AGENT,
        {
            "input": {
                "name": "Hook",
                "kind": "webhook",
                "config": {
                    "url": "https://bot:s3cret@agents.example.com/reply",
                    "headers": {"Authorization": "Bearer s3cret"},
                },
            }
        },
    )
    config = body["data"]["createAgent"]["agent"]["config"]
    assert "s3cret" not in str(config)
    assert config["headers"] == {"Authorization": "[hidden]"}
    assert config["url"] == "https://[hidden]@agents.example.com/reply"
