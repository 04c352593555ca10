"""Unexpected exceptions stay masked in either media type; client errors stay readable."""

import json
import logging
import re

import httpx
import pytest
from sqlalchemy import text

from runql.security.media import GRAPHQL_RESPONSE
from runql.storage.database import Database
from tests.hardening.conftest import MakeClient, codes

FAILED_RUN = "{ runs(first: 1, filter: {status: ERROR}) { edges { node { id } } } }"
ERRORS_OF_A_RUN = (
    "query($id: ID!) { agents(first: 1) { totalCount } run(id: $id) { errors { id } } }"
)
LEAKS = ("Traceback", "/work/", 'File "', "run_errors", "sqlite", "sqlalchemy", "asyncpg", ".py")


def _assert_nothing_leaks(raw: str) -> None:
    for leak in LEAKS:
        assert leak not in raw, f"{leak!r} leaked into {raw}"


async def _break_run_errors(database: Database) -> None:
    async with database.write() as session:
        await session.execute(text("DROP TABLE run_errors"))


async def test_a_masked_error_in_graphql_response_json_leaks_nothing(
    http: httpx.AsyncClient, demo_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    failed = (await http.post("/graphql", json={"query": FAILED_RUN})).json()
    run_id = failed["data"]["runs"]["edges"][0]["node"]["id"]
    await _break_run_errors(demo_database)

    with caplog.at_level(logging.ERROR, logger="runql.errors"):
        response = await http.post(
            "/graphql",
            headers={"Accept": GRAPHQL_RESPONSE},
            json={"query": ERRORS_OF_A_RUN, "variables": {"id": run_id}},
        )

    assert response.status_code == 200  # data is there: a field failed, not the request
    body = response.json()
    assert body["data"]["agents"]["totalCount"] > 0
    assert body["data"]["run"] is None
    assert set(codes(body)) == {"INTERNAL_SERVER_ERROR"}
    for error in body["errors"]:
        assert error["message"] == "Internal server error"
        assert re.fullmatch(r"[0-9a-f]{32}", error["extensions"]["errorId"])
        assert error["extensions"]["errorId"] in caplog.text
    _assert_nothing_leaks(response.text)


@pytest.mark.parametrize(
    "request_args",
    [
        {"json": {"query": "{ " * 3 + "}" * 3}},
        {"json": {"query": "{ runs { " + "totalCount " * 3000 + "} }"}},
        {"json": {"query": "{ " + " ".join(f"a{i}: __typename" for i in range(20)) + " }"}},
        {"content": b"x" * 10, "headers": {"Content-Type": "text/plain"}},
        {"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}},
    ],
    ids=["parse", "tokens", "aliases", "content-type", "not-an-object"],
)
async def test_refusals_are_readable_and_leak_nothing(
    client_with: MakeClient, request_args: dict[str, object]
) -> None:
    http = await client_with()

    response = await http.post("/graphql", **request_args)  # type: ignore[arg-type]

    body = response.json()
    assert codes(body)
    assert "INTERNAL_SERVER_ERROR" not in codes(body)
    assert all(error["message"] != "Internal server error" for error in body["errors"])
    _assert_nothing_leaks(json.dumps(body))
