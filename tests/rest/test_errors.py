"""Every REST error has one shape, `{status, code, message, field}`, and the right status."""

import logging

import httpx
import pytest
from sqlalchemy import text

from runql.storage.database import Database
from runql.storage.tables import RunRow
from tests.rest.conftest import error_of

DAY = "2025-05-20T00:00:00Z"
LATER = "2025-05-25T00:00:00Z"

# (what is wrong, query, field)
BAD_QUERIES: list[tuple[str, list[tuple[str, str]], str]] = [
    ("a limit over the cap", [("limit", "101")], "limit"),
    ("a zero limit", [("limit", "0")], "limit"),
    ("a limit in words", [("limit", "ten")], "limit"),
    ("a limit twice", [("limit", "5"), ("limit", "6")], "limit"),
    ("an unknown order", [("order", "newest")], "order"),
    ("a forged cursor", [("after", "bm90IGEgY3Vyc29y")], "after"),
    ("a cursor that is not base64", [("before", "%%%")], "before"),
    ("after and before", [("after", "x"), ("before", "y")], "before"),
    ("an unknown status", [("status", "done")], "status"),
    ("an upper-case status", [("status", "SUCCESS")], "status"),
    ("an empty status", [("status", "")], "status"),
    ("a trailing comma", [("status", "success,")], "status"),
    ("a malformed id", [("id", "nope")], "id"),
    ("an agent id as run id", [("id", "agent_Rm4Mnheq2bfEPhBhP7SY")], "id"),
    ("a run id as agent id", [("agent_id", "run_Rm4Mnheq2bfEPhBhP7SY")], "agent_id"),
    ("a malformed thread id", [("thread_id", "thread_")], "thread_id"),
    ("an unknown operator", [("created_at[eq]", DAY)], "created_at[eq]"),
    ("an unknown dotted operator", [("started_at.after", DAY)], "started_at.after"),
    ("a range without operator", [("created_at", DAY)], "created_at"),
    ("a date that is not one", [("created_at[gte]", "yesterday")], "created_at[gte]"),
    ("a date without a zone", [("created_at[gte]", "2025-05-20T00:00:00")], "created_at[gte]"),
    ("an unencoded plus", [("created_at[gte]", "2025-05-20T00:00:00 02:00")], "created_at[gte]"),
    ("an inverted range", [("created_at[gte]", LATER), ("created_at[lt]", DAY)], "created_at"),
    ("an empty range", [("completed_at[gt]", DAY), ("completed_at[lt]", DAY)], "completed_at"),
    ("gt and gte together", [("started_at[gt]", DAY), ("started_at[gte]", DAY)], "started_at"),
    ("one bound twice", [("created_at[gte]", DAY), ("created_at.gte", DAY)], "created_at.gte"),
    ("an unknown status in an array", [("status[]", "done")], "status"),
    ("an agent id in a run id array", [("id[0]", "agent_Rm4Mnheq2bfEPhBhP7SY")], "id"),
    ("an array keyed by a name", [("status[first]", "success")], "status[first]"),
    ("a nested array", [("status[0][1]", "success")], "status[0][1]"),
    ("a single parameter as an array", [("limit[]", "5")], "limit[]"),
    ("an unknown array", [("stauts[]", "success")], "stauts[]"),
    ("an unknown parameter", [("stauts", "success")], "stauts"),
    ("Metorial's cursor parameter", [("cursor", "x")], "cursor"),
]


@pytest.mark.parametrize(
    ("query", "field"), [case[1:] for case in BAD_QUERIES], ids=[case[0] for case in BAD_QUERIES]
)
async def test_a_bad_list_query_is_a_400_naming_the_parameter(
    http: httpx.AsyncClient, query: list[tuple[str, str]], field: str
) -> None:
    response = await http.get("/runs", params=tuple(query))
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["code"], error["field"]) == ("bad_user_input", field), error


async def test_the_limit_error_names_the_cap(http: httpx.AsyncClient) -> None:
    response = await http.get("/runs", params={"limit": 500})
    assert error_of(response) == {
        "status": 400,
        "code": "bad_user_input",
        "field": "limit",
        "message": "limit is capped at 100 (got 500): page with the after and before cursors "
        "instead",
    }


async def test_a_malformed_run_id_is_a_400(http: httpx.AsyncClient) -> None:
    for malformed in ("nope", "run_short", "agent_Rm4Mnheq2bfEPhBhP7SY"):
        response = await http.get(f"/runs/{malformed}")
        assert response.status_code == 400
        assert error_of(response)["field"] == "runId"


async def test_an_unknown_run_is_a_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/runs/run_Rm4Mnheq2bfEPhBhP7SY")
    assert response.status_code == 404
    assert error_of(response) == {
        "status": 404,
        "code": "not_found",
        "field": "runId",
        "message": "there is no run run_Rm4Mnheq2bfEPhBhP7SY",
    }


async def test_a_path_below_a_run_is_a_404(http: httpx.AsyncClient, runs: list[RunRow]) -> None:
    response = await http.get(f"/runs/{runs[0].id}/messages")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/runs", "GET, POST"),
        ("PUT", "/runs/run_Rm4Mnheq2bfEPhBhP7SY", "GET"),
        ("POST", "/openapi.json", "GET"),
    ],
)
async def test_another_method_is_a_405(
    http: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert error_of(response)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer runql_sk_wrong"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
)
async def test_no_valid_key_is_a_401(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    http.headers.pop("Authorization")
    for method, path in (
        ("GET", "/runs"),
        ("GET", "/runs/run_Rm4Mnheq2bfEPhBhP7SY"),
        ("POST", "/runs"),
    ):
        response = await http.request(method, path, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert error_of(response)["code"] == "unauthenticated"


async def test_a_browser_without_a_key_gets_a_401_not_runs(http: httpx.AsyncClient) -> None:
    """The key check lets browsers' page loads through (for GraphiQL); REST still wants a key."""
    http.headers.pop("Authorization")
    response = await http.get("/runs", headers={"Accept": "text/html,*/*"})
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


async def test_an_unexpected_failure_is_a_500_that_tells_nothing_inside(
    http: httpx.AsyncClient, demo_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async with demo_database.write() as session:
        await session.execute(text("DROP TABLE run_errors"))
    with caplog.at_level(logging.ERROR, logger="runql.errors"):
        response = await http.get("/runs")
    assert response.status_code == 500
    error = error_of(response)
    assert set(error) == {"status", "code", "message", "error_id"}
    assert (error["code"], error["message"]) == ("internal_server_error", "Internal server error")
    assert "run_errors" not in response.text
    assert error["error_id"] in caplog.text
    assert "run_errors" in caplog.text  # the log has what the client does not
