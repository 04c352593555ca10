"""REST's errors name REST's fields (`agent_id`, `content.attachments[0]`, `Idempotency-Key`)
and GraphQL's name GraphQL's (`agentId`), in `field` and in the message alike: the shared checks
(the lifecycle, the list filters) take the names from their caller."""

import re
from typing import Any

import httpx
import pytest

from runql.storage.tables import AgentRow, RunRow
from tests.conftest import GraphQLClient
from tests.rest.conftest import error_of

AGENT = "agent_Rm4Mnheq2bfEPhBhP7SY"
THREAD = "thread_Rm4Mnheq2bfEPhBhP7SY"
DAY = "2025-05-20T00:00:00Z"
LATER = "2025-05-25T00:00:00Z"
CAMEL = re.compile(r"\b[a-z]+(?:[A-Z][a-z0-9]*)+\b")  # agentId; not agent_Rm4Mn… nor Content-Type
QUOTED = re.compile(r"'[^']*'")

# (what is wrong, body fields beside agent_id and content, REST field, REST message part,
#  the same input in GraphQL, GraphQL field, GraphQL message part)
REFUSALS: list[tuple[str, dict[str, Any], str, str, dict[str, Any], str, str]] = [
    (
        "a thread id as agent id",
        {"agent_id": THREAD},
        "agent_id",
        "agent_id takes agent_ ids",
        {"agentId": THREAD},
        "agentId",
        "agentId takes agent_ ids",
    ),
    (
        "an agent id as thread id",
        {"thread_id": AGENT},
        "thread_id",
        "thread_id takes thread_ ids",
        {"threadId": AGENT},
        "threadId",
        "threadId takes thread_ ids",
    ),
    (
        "an attachment with neither file nor url",
        {"content": {"attachments": [{"type": "file"}]}},
        "content.attachments[0]",
        "an attachment needs a file_id or a url",
        {"content": {"structured": {"attachments": [{"type": "FILE"}]}}},
        "content.attachments[0]",
        "an attachment needs a fileId or a url",
    ),
    (
        "raw inputs over the cap",
        {"raw_inputs": {"big": "x" * 70_000}},
        "raw_inputs",
        "raw_inputs is 70010 bytes as JSON",
        {"rawInputs": {"big": "x" * 70_000}},
        "rawInputs",
        "rawInputs is 70010 bytes as JSON",
    ),
]


def _no_camel_case(error: dict[str, Any]) -> None:
    """Neither the field nor the message (but what it quotes of the request) is camelCase."""
    assert not CAMEL.search(error.get("field", "")), error
    assert not CAMEL.search(QUOTED.sub("", error["message"])), error


@pytest.mark.parametrize(
    ("body", "field", "message"), [r[1:4] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
async def test_rest_refusals_name_rest_fields(
    http: httpx.AsyncClient, echo: AgentRow, body: dict[str, Any], field: str, message: str
) -> None:
    response = await http.post("/runs", json={"agent_id": echo.id, "content": "Hi", **body})
    error = error_of(response)
    assert (error["status"], error["field"]) == (400, field), error
    assert message in error["message"]
    _no_camel_case(error)


@pytest.mark.parametrize(
    ("given", "field", "message"), [r[4:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
async def test_graphql_refusals_name_graphql_fields(
    gql: GraphQLClient, echo: AgentRow, given: dict[str, Any], field: str, message: str
) -> None:
    body = await gql(
        """mutation($input: CreateRunInput!) { createRun(input: $input) {
      run { id } } }""",
        {"input": {"agentId": echo.id, "content": {"text": "Hi"}, **given}},
    )
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert message in error["message"]


async def test_rest_names_what_the_lifecycle_finds_missing_or_in_conflict(
    http: httpx.AsyncClient, echo: AgentRow
) -> None:
    unknown = await http.post("/runs", json={"agent_id": AGENT, "content": "Hi"})
    assert (unknown.status_code, error_of(unknown)["field"]) == (404, "agent_id")
    no_thread = await http.post(
        "/runs", json={"agent_id": echo.id, "content": "Hi", "thread_id": THREAD}
    )
    assert (no_thread.status_code, error_of(no_thread)["field"]) == (404, "thread_id")
    key = {"Idempotency-Key": "k-names"}
    assert (
        await http.post("/runs", json={"agent_id": echo.id, "content": "Hi"}, headers=key)
    ).status_code == 201
    again = await http.post("/runs", json={"agent_id": echo.id, "content": "Other"}, headers=key)
    assert (again.status_code, error_of(again)["field"]) == (409, "Idempotency-Key")
    too_long = await http.post(
        "/runs", json={"agent_id": echo.id, "content": "Hi"}, headers={"Idempotency-Key": "k" * 256}
    )
    assert (too_long.status_code, error_of(too_long)["field"]) == (400, "Idempotency-Key")
    for response in (unknown, no_thread, again, too_long):
        _no_camel_case(error_of(response))


async def test_an_inverted_range_is_named_by_each_api(
    http: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    response = await http.get("/runs", params={"created_at[gte]": LATER, "created_at[lt]": DAY})
    error = error_of(response)
    assert error["field"] == "created_at"
    assert error["message"].startswith("created_at: the range is inverted")
    body = await gql(
        "query($gte: DateTime!, $lt: DateTime!) { runs(filter: {createdAt: "
        "{gte: $gte, lt: $lt}}) { totalCount } }",
        {"gte": LATER, "lt": DAY},
    )
    [graphql_error] = body["errors"]
    assert graphql_error["extensions"]["field"] == "filter.createdAt"
    assert graphql_error["message"].startswith("filter.createdAt: the range is inverted")


# Every 400 a GET /runs query can give (tests/rest/test_errors.py checks their fields).
BAD_QUERIES = [
    {"limit": "101"},
    {"limit": "ten"},
    {"order": "newest"},
    {"after": "bm90IGEgY3Vyc29y"},
    {"after": "x", "before": "y"},
    {"status": "done"},
    {"status": ""},
    {"id": "nope"},
    {"id": AGENT},
    {"agent_id": "run_Rm4Mnheq2bfEPhBhP7SY"},
    {"thread_id": AGENT},
    {"created_at[eq]": DAY},
    {"created_at": DAY},
    {"created_at[gte]": "yesterday"},
    {"created_at[gte]": "2025-05-20T00:00:00"},
    {"started_at[gt]": DAY, "started_at[gte]": DAY},
    {"completed_at[lt]": DAY, "completed_at[lte]": DAY},
    {"status[first]": "success"},
    {"stauts": "success"},
]


async def test_no_list_query_error_names_a_camel_case_field(
    http: httpx.AsyncClient, runs: list[RunRow]
) -> None:
    for query in BAD_QUERIES:
        response = await http.get("/runs", params=query)
        assert response.status_code == 400, (query, response.text)
        _no_camel_case(error_of(response))
    malformed = error_of(await http.get("/runs/nope"))
    assert malformed["field"] == "runId"  # the spec's name of the path parameter, /runs/:runId
    assert not CAMEL.search(QUOTED.sub("", malformed["message"]))
