"""The execution timeout: an operation still running is cancelled and answers TIMEOUT."""

import time
from pathlib import Path

import httpx
import pytest

from runql.security.media import GRAPHQL_RESPONSE
from runql.settings import Settings
from runql.storage import raw
from runql.storage.database import Database
from tests.hardening.conftest import MakeClient, MakeGql, codes, running_run

FEED = (Path(__file__).resolve().parents[2] / "queries" / "feed.graphql").read_text()
CANCEL = "mutation($id: ID!) { cancelRun(id: $id) { run { id status } } }"


def test_the_default_timeout_is_ten_seconds() -> None:
    assert Settings().execution_timeout_seconds == 10.0


async def test_an_operation_over_the_timeout_is_cancelled(
    gql_with: MakeGql, demo_database: Database
) -> None:
    """cancelRun waits up to 5 s for a worker to stop a RUNNING run; here none will."""
    run_id = await running_run(demo_database)
    gql = gql_with(workers=1, execution_timeout_seconds=0.3)

    started = time.perf_counter()
    body = await gql(CANCEL, {"id": run_id})
    elapsed = time.perf_counter() - started

    assert codes(body) == ["TIMEOUT"]
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "TIMEOUT", "seconds": 0.3}
    assert "0.3 s" in body["errors"][0]["message"]
    assert elapsed < 2


async def test_a_timed_out_query_leaves_the_database_usable(gql_with: MakeGql) -> None:
    """Cancelled in the middle of real reads; the next operation runs as usual (and gives a
    read the cancelled one left running in aiosqlite's thread time to end)."""
    body = await gql_with(execution_timeout_seconds=0.001)(FEED, {"first": 100})

    assert codes(body) == ["TIMEOUT"]
    again = await gql_with()(FEED, {"first": 100})
    assert "errors" not in again
    assert len(again["data"]["runs"]["edges"]) == 100


async def test_a_query_that_ends_past_its_time_without_a_turn_of_the_loop_answers_timeout(
    gql_with: MakeGql, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the feed's reads run on the loop's thread and give the loop no turn here, so
    the timer never cancels them: the query's time is checked as it ends. (On PostgreSQL each
    read awaits, and the timer cancels it.)"""
    monkeypatch.setattr(raw, "TURN_SECONDS", 3600.0)
    started = time.perf_counter()
    body = await gql_with(execution_timeout_seconds=0.001)(FEED, {"first": 100})

    assert time.perf_counter() - started > 0.001
    assert codes(body) == ["TIMEOUT"]
    assert body["data"] is None


async def test_a_timeout_over_http_is_504_in_graphql_response_json(
    client_with: MakeClient, demo_database: Database
) -> None:
    run_id = await running_run(demo_database)
    http: httpx.AsyncClient = await client_with(workers=1, execution_timeout_seconds=0.2)
    payload = {"query": CANCEL, "variables": {"id": run_id}}

    legacy = await http.post("/graphql", json=payload)
    modern = await http.post("/graphql", json=payload, headers={"Accept": GRAPHQL_RESPONSE})

    assert (legacy.status_code, codes(legacy.json())) == (200, ["TIMEOUT"])
    assert (modern.status_code, codes(modern.json())) == (504, ["TIMEOUT"])
    assert "data" not in modern.json()
