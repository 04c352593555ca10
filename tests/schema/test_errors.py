"""Every error carries `extensions.code`; unexpected ones are masked, and nothing leaks."""

import json
import logging
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from runql.schema.extensions import INTERNAL_MESSAGE
from runql.storage.database import Database
from tests.conftest import GraphQLClient

ERRORS_OF_FAILED_RUNS = (
    "{ runs(first: 5, filter: {status: ERROR}) { edges { node { id errors { id code } } } } }"
)
LEAKS = ("Traceback", "/work/", 'File "', "run_errors", "sqlite", "sqlalchemy", ".py")


async def _break_run_errors(database: Database) -> None:
    async with database.write() as session:
        await session.execute(text("DROP TABLE run_errors"))


def _codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body["errors"]]


def _assert_nothing_leaks(raw: str) -> None:
    for leak in LEAKS:
        assert leak not in raw, f"{leak!r} leaked into {raw}"


async def test_a_syntax_error_is_parse_failed(gql: GraphQLClient) -> None:
    body = await gql("{ runs { totalCount ")

    assert body["data"] is None
    assert _codes(body) == ["GRAPHQL_PARSE_FAILED"]
    assert body["errors"][0]["message"].startswith("Syntax Error")
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 21}]


async def test_an_empty_document_is_parse_failed(gql: GraphQLClient) -> None:
    assert _codes(await gql("   ")) == ["GRAPHQL_PARSE_FAILED"]


async def test_an_unknown_field_fails_validation(gql: GraphQLClient) -> None:
    body = await gql("{ runs { totalCount colour } }")

    assert body["data"] is None
    assert _codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "colour" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    "document",
    [
        "query($first: Int) { runs { totalCount } }",
        "{ runs(first: $first) { totalCount } }",
        "query($first: String) { runs(first: $first) { totalCount } }",
        '{ runs(first: "ten") { totalCount } }',
        "{ runs { totalCount } } { agents { totalCount } }",
    ],
    ids=[
        "unused-variable",
        "undefined-variable",
        "variable-of-the-wrong-type",
        "literal-of-the-wrong-type",
        "two-anonymous-operations",
    ],
)
async def test_documents_that_break_the_rules_fail_validation(
    gql: GraphQLClient, document: str
) -> None:
    body = await gql(document)

    assert body["data"] is None
    assert set(_codes(body)) == {"GRAPHQL_VALIDATION_FAILED"}


async def test_a_variable_value_of_the_wrong_type_is_bad_user_input(gql: GraphQLClient) -> None:
    body = await gql("query($first: Int) { runs(first: $first) { totalCount } }", {"first": "ten"})

    assert body["data"] is None
    assert _codes(body) == ["BAD_USER_INPUT"]


async def test_a_missing_required_variable_is_bad_user_input(gql: GraphQLClient) -> None:
    body = await gql("query($id: ID!) { run(id: $id) { id } }", {})

    assert _codes(body) == ["BAD_USER_INPUT"]


async def test_errors_a_resolver_raises_name_their_field(gql: GraphQLClient) -> None:
    body = await gql("{ runs(first: 500) { totalCount } }")

    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "first"}


async def test_an_unexpected_exception_in_a_resolver_is_masked(
    gql: GraphQLClient, demo_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await _break_run_errors(demo_database)

    with caplog.at_level(logging.ERROR, logger="runql.errors"):
        body = await gql(ERRORS_OF_FAILED_RUNS)

    assert body["errors"]
    for error in body["errors"]:
        assert error["message"] == INTERNAL_MESSAGE == "Internal server error"
        assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        assert re.fullmatch(r"[0-9a-f]{32}", error["extensions"]["errorId"])
        assert error["path"][0] == "runs"
        assert error["path"][-1] == "errors"
    _assert_nothing_leaks(json.dumps(body))
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert all(error["extensions"]["errorId"] in logged for error in body["errors"])


async def test_each_masked_error_has_its_own_id(
    gql: GraphQLClient, demo_database: Database
) -> None:
    await _break_run_errors(demo_database)

    first = await gql(ERRORS_OF_FAILED_RUNS)
    second = await gql(ERRORS_OF_FAILED_RUNS)

    ids = [error["extensions"]["errorId"] for body in (first, second) for error in body["errors"]]
    assert len(ids) == len(set(ids)) >= 2


async def test_a_masked_error_spares_the_rest_of_the_response(
    gql: GraphQLClient, demo_database: Database
) -> None:
    failed = await gql("{ runs(first: 1, filter: {status: ERROR}) { edges { node { id } } } }")
    run_id = failed["data"]["runs"]["edges"][0]["node"]["id"]
    await _break_run_errors(demo_database)

    body = await gql(
        "query($id: ID!) { agents(first: 1) { totalCount } run(id: $id) { errors { id } } }",
        {"id": run_id},
    )

    assert body["data"]["agents"]["totalCount"] > 0
    assert body["data"]["run"] is None
    assert _codes(body) == ["INTERNAL_SERVER_ERROR"]


async def _post(http: httpx.AsyncClient, payload: Any) -> httpx.Response:
    return await http.post("/graphql", json=payload)


async def test_a_masked_error_over_http_leaks_nothing(
    http: httpx.AsyncClient, demo_database: Database
) -> None:
    await _break_run_errors(demo_database)

    response = await _post(http, {"query": ERRORS_OF_FAILED_RUNS})

    assert response.status_code == 200
    assert {e["extensions"]["code"] for e in response.json()["errors"]} == {"INTERNAL_SERVER_ERROR"}
    _assert_nothing_leaks(response.text)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"query": "{ runs { "}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ runz { totalCount } }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": "{ runs(filter: {status: DONE}) { totalCount } }"}, "GRAPHQL_VALIDATION_FAILED"),
        (
            {"query": "query($n: Int) { runs(first: $n) { totalCount } }", "variables": {"n": "x"}},
            "BAD_USER_INPUT",
        ),
        ({"query": "{ runs(first: 101) { totalCount } }"}, "BAD_USER_INPUT"),
        ({"query": '{ runs(after: "garbage") { totalCount } }'}, "BAD_USER_INPUT"),
        ({"query": '{ node(id: "nope") { id } }'}, "BAD_USER_INPUT"),
    ],
    ids=[
        "syntax",
        "unknown-field",
        "unknown-enum",
        "bad-variable",
        "page-cap",
        "cursor",
        "malformed-id",
    ],
)
async def test_error_bodies_over_http_have_a_code_and_leak_nothing(
    http: httpx.AsyncClient, payload: dict[str, Any], code: str
) -> None:
    response = await _post(http, payload)

    assert response.status_code == 200
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == [code]
    _assert_nothing_leaks(response.text)


@pytest.mark.parametrize(
    "request_args",
    [
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"json": {}},
        {"json": {"query": 5}},
        {"json": {"query": "{ runs { totalCount } }", "variables": "nope"}},
        {"json": {"query": "query A { runs { totalCount } }", "operationName": "B"}},
    ],
    ids=[
        "not-json",
        "no-query",
        "query-not-a-string",
        "variables-not-an-object",
        "unknown-operation",
    ],
)
async def test_malformed_requests_over_http_leak_nothing(
    http: httpx.AsyncClient, request_args: dict[str, Any]
) -> None:
    response = await http.post("/graphql", **request_args)

    assert response.status_code == 400
    _assert_nothing_leaks(response.text)
