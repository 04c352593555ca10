"""REST reads are batched: a page of 100 runs takes as many SQL statements as a page of 5."""

import httpx
import pytest

from runql.storage.database import counting_statements

# The page and the seven reads of what hangs below the runs (the key's principal is read once,
# by the first request, and kept: runql.auth.principals).
LIST_STATEMENTS = 1 + 7


async def statements(http: httpx.AsyncClient, path: str, **params: str | int) -> int:
    assert (await http.get("/runs", params={"limit": 1})).status_code == 200  # the key is known
    async with counting_statements() as count:
        response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return count.statements


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_list_statements_do_not_grow_with_the_limit(
    http: httpx.AsyncClient, order: str
) -> None:
    counts = {
        limit: await statements(http, "/runs", limit=limit, order=order) for limit in (1, 5, 100)
    }
    assert set(counts.values()) == {LIST_STATEMENTS}, counts


async def test_a_page_after_a_cursor_adds_one_statement(http: httpx.AsyncClient) -> None:
    cursor = (await http.get("/runs", params={"limit": 5})).json()["pagination"]["next_cursor"]
    assert await statements(http, "/runs", limit=100, after=cursor) == LIST_STATEMENTS + 1


async def test_one_run_takes_as_many_statements_as_a_page(http: httpx.AsyncClient) -> None:
    run_id = (await http.get("/runs", params={"limit": 1})).json()["items"][0]["id"]
    assert await statements(http, f"/runs/{run_id}") == LIST_STATEMENTS
