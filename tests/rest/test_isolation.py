"""A key opens its own organization only: another's runs and agents are as good as missing."""

import httpx

from runql.storage.database import Database
from runql.storage.tables import AgentRow, RunRow
from tests.rest.conftest import error_of, row_counts


def not_found(run_id: str) -> dict[str, object]:
    return {
        "status": 404,
        "code": "not_found",
        "field": "runId",
        "message": f"there is no run {run_id}",
    }


async def test_another_organizations_run_is_a_404_like_a_missing_one(
    other_http: httpx.AsyncClient, http: httpx.AsyncClient, runs: list[RunRow]
) -> None:
    missing = "run_Rm4Mnheq2bfEPhBhP7SY"
    assert error_of(await http.get(f"/runs/{missing}")) == not_found(missing)
    for run in runs[:5]:
        response = await other_http.get(f"/runs/{run.id}")
        assert response.status_code == 404
        assert error_of(response) == not_found(run.id)
        assert (await http.get(f"/runs/{run.id}")).status_code == 200


async def test_another_organization_lists_none_of_the_runs(
    other_http: httpx.AsyncClient, runs: list[RunRow]
) -> None:
    empty = {
        "items": [],
        "pagination": {
            "has_more_before": False,
            "has_more_after": False,
            "next_cursor": None,
            "prev_cursor": None,
        },
    }
    assert (await other_http.get("/runs")).json() == empty
    by_id = await other_http.get("/runs", params={"id": runs[0].id, "agent_id": runs[0].agent_id})
    assert by_id.json() == empty


async def test_another_organizations_cursor_shows_nothing_of_the_runs(
    other_http: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    cursor = (await http.get("/runs", params={"limit": 5})).json()["pagination"]["next_cursor"]
    assert (await other_http.get("/runs", params={"after": cursor})).json()["items"] == []


async def test_another_organizations_agent_takes_no_run(
    other_http: httpx.AsyncClient, demo_database: Database, echo: AgentRow
) -> None:
    counts = await row_counts(demo_database)
    response = await other_http.post(
        "/runs", json={"agent_id": echo.id, "content": "Hi"}, headers={"Idempotency-Key": "sneaky"}
    )
    assert response.status_code == 404
    assert error_of(response) == {
        "status": 404,
        "code": "not_found",
        "field": "agent_id",
        "message": f"there is no agent {echo.id}",
    }
    assert await row_counts(demo_database) == counts


async def test_another_organizations_thread_takes_no_run(
    other_http: httpx.AsyncClient, demo_database: Database, runs: list[RunRow]
) -> None:
    counts = await row_counts(demo_database)
    response = await other_http.post(
        "/runs",
        json={"agent_id": runs[0].agent_id, "thread_id": runs[0].thread_id, "content": "Hi"},
    )
    assert response.status_code == 404
    assert await row_counts(demo_database) == counts
