"""Cursor pagination of GET /runs: walked forward and back, every run exactly once."""

from typing import Any

import httpx
import pytest

from runql.storage.tables import RunRow

PAGE = 13


async def page(http: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await http.get("/runs", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids_of(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


async def walk_forward(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every page, following next_cursor from the first while has_more_after."""
    pages = [await page(http, **params)]
    while pages[-1]["pagination"]["has_more_after"]:
        pages.append(await page(http, **params, after=pages[-1]["pagination"]["next_cursor"]))
    return pages


async def walk_backward(
    http: httpx.AsyncClient, last: dict[str, Any], **params: Any
) -> list[dict[str, Any]]:
    """Every page, following prev_cursor back from `last` while has_more_before."""
    pages = [last]
    while pages[0]["pagination"]["has_more_before"]:
        pages.insert(0, await page(http, **params, before=pages[0]["pagination"]["prev_cursor"]))
    return pages


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_walking_forward_then_back_shows_every_run_once(
    http: httpx.AsyncClient, runs: list[RunRow], order: str
) -> None:
    expected = [run.id for run in (runs if order == "desc" else reversed(runs))]
    forward = await walk_forward(http, limit=PAGE, order=order)
    assert [run_id for body in forward for run_id in ids_of(body)] == expected
    assert [len(ids_of(body)) for body in forward[:-1]] == [PAGE] * (len(forward) - 1)
    assert forward[0]["pagination"]["has_more_before"] is False
    assert all(body["pagination"]["has_more_before"] for body in forward[1:])
    backward = await walk_backward(http, forward[-1], limit=PAGE, order=order)
    assert [run_id for body in backward for run_id in ids_of(body)] == expected
    assert backward[0]["pagination"]["has_more_before"] is False
    assert all(body["pagination"]["has_more_after"] for body in backward[:-1])


async def test_the_default_page_is_the_twenty_newest(
    http: httpx.AsyncClient, runs: list[RunRow]
) -> None:
    assert ids_of(await page(http)) == [run.id for run in runs[:20]]


async def test_before_a_page_is_the_page_that_led_to_it(
    http: httpx.AsyncClient, runs: list[RunRow]
) -> None:
    first = await page(http, limit=5)
    second = await page(http, limit=5, after=first["pagination"]["next_cursor"])
    assert ids_of(second) == [run.id for run in runs[5:10]]
    back = await page(http, limit=5, before=second["pagination"]["prev_cursor"])
    assert back == first


async def test_the_first_pages_cursor_finds_runs_added_later(
    http: httpx.AsyncClient, runs: list[RunRow]
) -> None:
    first = await page(http, limit=10)
    assert first["pagination"]["has_more_before"] is False
    created = await http.post("/runs", json={"agent_id": runs[0].agent_id, "content": "new"})
    assert created.status_code == 201
    newer = await page(http, limit=10, before=first["pagination"]["prev_cursor"])
    assert ids_of(newer) == [created.json()["id"]]
    second = await page(http, limit=10, after=first["pagination"]["next_cursor"])
    assert ids_of(second) == [run.id for run in runs[10:20]]


async def test_the_last_page_says_nothing_follows(
    http: httpx.AsyncClient, runs: list[RunRow]
) -> None:
    first = await page(http, limit=100, order="asc")
    body = await page(http, limit=100, order="asc", after=first["pagination"]["next_cursor"])
    assert ids_of(body) == [run.id for run in reversed(runs)][100:]
    assert body["pagination"]["has_more_after"] is False
    assert body["pagination"]["has_more_before"] is True
