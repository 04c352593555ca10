"""Malformed JSON, on /graphql and POST /runs alike: bad UTF-8, a key twice, NaN, nesting over
RUNQL_MAX_BODY_DEPTH. Each is a 400 JSON error saying what is wrong, and nothing is written."""

from typing import Any

import httpx
import pytest

from runql.settings import Settings
from runql.storage.database import Database
from tests.hardening.conftest import MakeClient, codes
from tests.rest.conftest import demo_agent, row_counts

JSON = {"Content-Type": "application/json"}
CREATE_AGENT = (
    'mutation { createAgent(input: {name: \\"twice\\", kind: \\"echo\\"}) '
    "{ agent { id } } }"
)  # escaped for a JSON string


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _graphql_with_variable(value: bytes) -> bytes:
    return b'{"query": "{ __typename }", "variables": {"x": ' + value + b"}}"


MALFORMED = {
    "duplicate-query": (
        b'{"query": "{ __typename }", "query": "' + CREATE_AGENT.encode() + b'"}',
        "'query' appears twice",
    ),
    "duplicate-in-variables": (
        b'{"query": "{ __typename }", "variables": {"a": 1, "a": 2}}',
        "'a' appears twice",
    ),
    "3000-deep": (_nested(3000), "more than 64 levels"),
    "65-deep-variable": (_graphql_with_variable(_nested(63)), "more than 64 levels"),
    "bad-utf8": (b'{"query": "{ __typename }\xff"}', "not UTF-8"),
    "bad-utf8-in-variable": (_graphql_with_variable(b'"caf\xe9"'), "not UTF-8"),
    # the byte at fault counted in the body as sent, its byte order mark included
    "bad-utf8-after-a-bom": (b'\xef\xbb\xbf{"query": "\xff"}', "byte 14 is 0xff"),
    "nan": (_graphql_with_variable(b"NaN"), "NaN is not JSON"),
    "huge-integer": (_graphql_with_variable(b"9" * 5000), "4,300 digits"),
}


@pytest.mark.parametrize(("body", "says"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_graphql_bodies_are_400_json(
    http: httpx.AsyncClient, demo_database: Database, body: bytes, says: str
) -> None:
    before = await row_counts(demo_database)

    response = await http.post("/graphql", content=body, headers=JSON)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert codes(response.json()) == ["BAD_REQUEST"]
    assert says in response.json()["errors"][0]["message"]
    assert await row_counts(demo_database) == before


async def test_the_duplicate_query_key_does_not_run_the_mutation(
    http: httpx.AsyncClient,
    demo_database: Database,
) -> None:
    """Last-wins would run the second `query`, a mutation a reviewer of the first never saw."""
    before = await row_counts(demo_database)
    body = b'{"query": "{ __typename }", "query": "' + CREATE_AGENT.encode() + b'"}'

    response = await http.post("/graphql", content=body, headers=JSON)

    assert response.status_code == 400
    assert await row_counts(demo_database) == before


async def test_get_variables_are_read_by_the_same_parser(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/graphql", params={"query": "{ __typename }", "variables": '{"a": 1, "a": 2}'}
    )

    assert response.status_code == 400
    assert "'a' appears twice" in response.json()["errors"][0]["message"]


async def test_nesting_at_the_limit_is_read(client_with: MakeClient) -> None:
    http = await client_with(max_body_depth=10)
    at_limit = _graphql_with_variable(_nested(8))  # body, variables, then 8 arrays: 10

    assert (await http.post("/graphql", content=at_limit, headers=JSON)).status_code == 200
    over = await http.post("/graphql", content=_graphql_with_variable(_nested(9)), headers=JSON)
    assert over.status_code == 400
    assert "more than 10 levels" in over.json()["errors"][0]["message"]


def test_the_default_body_depth_is_64() -> None:
    assert Settings().max_body_depth == 64


def _run_body(agent_id: str, extra: bytes) -> bytes:
    return b'{"agent_id": "' + agent_id.encode() + b'", "content": "hi"' + extra + b"}"


REST_MALFORMED = {
    "duplicate-content": (b', "content": "again"', "'content' appears twice"),
    "duplicate-metadata-key": (b', "metadata": {"k": 1, "k": 2}', "'k' appears twice"),
    "deep-raw-inputs": (b', "raw_inputs": ' + _nested(3000), "more than 64 levels"),
    "nan": (b', "metadata": {"k": NaN}', "NaN is not JSON"),
}


@pytest.mark.parametrize(("extra", "says"), REST_MALFORMED.values(), ids=REST_MALFORMED.keys())
async def test_malformed_run_bodies_are_400_and_write_nothing(
    http: httpx.AsyncClient, demo_database: Database, extra: bytes, says: str
) -> None:
    echo = await demo_agent(demo_database, "echo")
    before = await row_counts(demo_database)

    response = await http.post("/runs", content=_run_body(echo.id, extra), headers=JSON)

    body: dict[str, Any] = response.json()
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert (body["code"], body["field"]) == ("bad_user_input", "body")
    assert says in body["message"]
    assert await row_counts(demo_database) == before


async def test_a_run_body_that_is_not_utf8_is_400(
    http: httpx.AsyncClient, demo_database: Database
) -> None:
    echo = await demo_agent(demo_database, "echo")

    response = await http.post(
        "/runs", content=_run_body(echo.id, b', "language": "\xff"'), headers=JSON
    )

    assert response.status_code == 400
    assert response.json()["code"] == "bad_user_input"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (b'"\\ud800"', "lone surrogate (U+D800)"),
        (b"123456789012345678901234567890", "integer beyond 64 bits"),
    ],
    ids=["lone-surrogate", "huge-integer"],
)
async def test_a_run_body_holding_what_no_response_could_carry_is_400(
    http: httpx.AsyncClient,
    demo_database: Database,
    value: bytes,
    says: str,
) -> None:
    echo = await demo_agent(demo_database, "echo")
    before = await row_counts(demo_database)

    response = await http.post(
        "/runs", content=_run_body(echo.id, b', "raw_inputs": ' + value), headers=JSON
    )

    assert response.status_code == 400
    assert response.json()["field"] == "raw_inputs"  # runql.text's rule names the field
    assert says in response.json()["message"]
    assert await row_counts(demo_database) == before
