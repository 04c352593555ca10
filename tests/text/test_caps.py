"""`metadata` and `rawInputs` are capped in size (RUNQL_MAX_JSON_BYTES) and depth
(RUNQL_MAX_JSON_DEPTH), and raw inputs are an object as the spec has them: on GraphQL and
REST alike, refused with BAD_USER_INPUT naming the field, writing nothing."""

from typing import Any

import httpx
import pytest

from runql.storage.database import Database
from runql.storage.tables import AgentRow
from tests.conftest import GraphQLClient
from tests.lifecycle.conftest import row_counts
from tests.rest.conftest import echo

__all__ = ["echo"]

CREATE_RUN = """mutation($input: CreateRunInput!) { createRun(input: $input) {
  run { id metadata rawInputs } } }"""


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


OVER = [
    ("metadata", {"big": "x" * (64 * 1024)}, "is 65546 bytes as JSON; the limit is 65536"),
    ("metadata", _nested(17), "nested more than 16 levels deep"),
    ("rawInputs", {"big": ["x" * 1024] * 64}, "the limit is 65536"),
    ("rawInputs", {"list": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}, "nested more than 16 levels"),
    ("rawInputs", "a string", "rawInputs must be a JSON object"),
    ("rawInputs", [1, 2], "rawInputs must be a JSON object"),
]


@pytest.mark.parametrize(("field", "value", "message"), OVER)
async def test_graphql_refuses_json_over_its_caps(
    gql: GraphQLClient,
    demo_database: Database,
    echo: AgentRow,
    field: str,
    value: Any,
    message: str,
) -> None:
    before = await row_counts(demo_database)
    body = await gql(
        CREATE_RUN, {"input": {"agentId": echo.id, "content": {"text": "hi"}, field: value}}
    )
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert message in error["message"]
    assert await row_counts(demo_database) == before


async def test_json_at_its_caps_is_taken(gql: GraphQLClient, echo: AgentRow) -> None:
    at_cap = {"big": "x" * (64 * 1024 - 10)}  # 65536 bytes as JSON
    body = await gql(
        CREATE_RUN,
        {
            "input": {
                "agentId": echo.id,
                "content": {"text": "hi"},
                "metadata": at_cap,
                "rawInputs": _nested(16),
            }
        },
    )
    assert "errors" not in body, body
    assert body["data"]["createRun"]["run"]["metadata"] == at_cap


@pytest.mark.parametrize(("field", "value", "message"), OVER)
async def test_rest_refuses_json_over_its_caps(
    http: httpx.AsyncClient,
    demo_database: Database,
    echo: AgentRow,
    field: str,
    value: Any,
    message: str,
) -> None:
    rest_name = "raw_inputs" if field == "rawInputs" else field
    before = await row_counts(demo_database)
    response = await http.post(
        "/runs", json={"agent_id": echo.id, "content": "hi", rest_name: value}
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["code"], body["field"]) == ("bad_user_input", rest_name)
    assert message.replace("rawInputs", "raw_inputs") in body["message"]  # REST's own name
    assert await row_counts(demo_database) == before
