"""GET /runs filters, each checked against the same filter computed over all the demo's runs."""

from collections.abc import Callable
from datetime import datetime

import httpx
import pytest

from runql.storage.tables import RunRow

Params = list[tuple[str, str]]
Predicate = Callable[[RunRow], bool]
Case = Callable[[list[RunRow]], tuple[Params, Predicate]]


async def listed_ids(http: httpx.AsyncClient, params: Params) -> list[str]:
    """The ids of every run the list shows, page after page."""
    ids: list[str] = []
    after: Params = []
    while True:
        response = await http.get("/runs", params=[*params, ("limit", "100"), *after])
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [item["id"] for item in body["items"]]
        if not body["pagination"]["has_more_after"]:
            return ids
        after = [("after", body["pagination"]["next_cursor"])]


def _stamp(value: datetime) -> str:
    return value.isoformat()  # +00:00, which httpx sends as %2B00:00


def _between(value: datetime | None, low: datetime, high: datetime) -> bool:
    return value is not None and low <= value < high


def status_one(runs: list[RunRow]) -> tuple[Params, Predicate]:
    return [("status", "success")], lambda run: run.status == "success"


def status_comma(runs: list[RunRow]) -> tuple[Params, Predicate]:
    return [("status", "success,error")], lambda run: run.status in ("success", "error")


def status_repeated_and_comma(runs: list[RunRow]) -> tuple[Params, Predicate]:
    return (
        [("status", "pending"), ("status", "running, cancelled")],
        lambda run: run.status in ("pending", "running", "cancelled"),
    )


def ids_repeated_and_comma(runs: list[RunRow]) -> tuple[Params, Predicate]:
    wanted = {runs[3].id, runs[50].id, runs[99].id}
    return (
        [("id", runs[3].id), ("id", f"{runs[50].id},{runs[99].id}")],
        lambda run: run.id in wanted,
    )


def status_brackets(runs: list[RunRow]) -> tuple[Params, Predicate]:
    """axios's arrays (and qs's with arrayFormat: "brackets")."""
    return (
        [("status[]", "success"), ("status[]", "error")],
        lambda run: run.status in ("success", "error"),
    )


def status_indices(runs: list[RunRow]) -> tuple[Params, Predicate]:
    """qs's arrays (and axios's with indexes: true)."""
    return (
        [("status[0]", "pending"), ("status[1]", "cancelled")],
        lambda run: run.status in ("pending", "cancelled"),
    )


def ids_in_every_encoding(runs: list[RunRow]) -> tuple[Params, Predicate]:
    wanted = {runs[1].id, runs[7].id, runs[42].id, runs[77].id}
    return (
        [("id[0]", runs[1].id), ("id[1]", runs[7].id), ("id[]", runs[42].id), ("id", runs[77].id)],
        lambda run: run.id in wanted,
    )


def agents_and_threads_as_arrays(runs: list[RunRow]) -> tuple[Params, Predicate]:
    agent_id, threads = runs[0].agent_id, {runs[0].thread_id, runs[5].thread_id}
    return (
        [("agent_id[]", agent_id), *(("thread_id[]", t) for t in sorted(threads))],
        lambda run: run.agent_id == agent_id and run.thread_id in threads,
    )


def agent(runs: list[RunRow]) -> tuple[Params, Predicate]:
    agent_id = runs[0].agent_id
    return [("agent_id", agent_id)], lambda run: run.agent_id == agent_id


def agents(runs: list[RunRow]) -> tuple[Params, Predicate]:
    both = {runs[0].agent_id, next(r.agent_id for r in runs if r.agent_id != runs[0].agent_id)}
    return [("agent_id", ",".join(sorted(both)))], lambda run: run.agent_id in both


def thread(runs: list[RunRow]) -> tuple[Params, Predicate]:
    thread_id = runs[10].thread_id
    return [("thread_id", thread_id)], lambda run: run.thread_id == thread_id


def created_range_brackets(runs: list[RunRow]) -> tuple[Params, Predicate]:
    low, high = runs[80].created_at, runs[20].created_at
    return (
        [("created_at[gte]", _stamp(low)), ("created_at[lt]", _stamp(high))],
        lambda run: _between(run.created_at, low, high),
    )


def created_range_dots(runs: list[RunRow]) -> tuple[Params, Predicate]:
    low, high = runs[80].created_at, runs[20].created_at
    return (
        [("created_at.gt", _stamp(low)), ("created_at.lte", _stamp(high))],
        lambda run: low < run.created_at <= high,
    )


def created_with_an_offset(runs: list[RunRow]) -> tuple[Params, Predicate]:
    low = runs[40].created_at
    local = low.astimezone(datetime.fromisoformat("2025-01-01T00:00:00+02:00").tzinfo)
    return [("created_at[gte]", local.isoformat())], lambda run: run.created_at >= low


def started_after(runs: list[RunRow]) -> tuple[Params, Predicate]:
    low = runs[60].created_at
    return (
        [("started_at[gt]", _stamp(low))],
        lambda run: run.started_at is not None and run.started_at > low,
    )


def completed_before(runs: list[RunRow]) -> tuple[Params, Predicate]:
    high = runs[30].created_at
    return (
        [("completed_at[lte]", _stamp(high))],
        lambda run: run.completed_at is not None and run.completed_at <= high,
    )


def everything_at_once(runs: list[RunRow]) -> tuple[Params, Predicate]:
    agent_id, low = runs[0].agent_id, runs[100].created_at
    return (
        [
            ("status", "success,error"),
            ("agent_id", agent_id),
            ("created_at[gte]", _stamp(low)),
            ("order", "asc"),
        ],
        lambda run: (
            run.status in ("success", "error")
            and run.agent_id == agent_id
            and run.created_at >= low
        ),
    )


CASES: list[Case] = [
    status_one,
    status_comma,
    status_repeated_and_comma,
    ids_repeated_and_comma,
    status_brackets,
    status_indices,
    ids_in_every_encoding,
    agents_and_threads_as_arrays,
    agent,
    agents,
    thread,
    created_range_brackets,
    created_range_dots,
    created_with_an_offset,
    started_after,
    completed_before,
    everything_at_once,
]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
async def test_filter_lists_exactly_the_matching_runs(
    http: httpx.AsyncClient, runs: list[RunRow], case: Case
) -> None:
    params, matches = case(runs)
    expected = [run.id for run in runs if matches(run)]
    assert expected, "the case must match some runs to mean anything"
    assert len(expected) < len(runs), "the case must leave some runs out to mean anything"
    if ("order", "asc") in params:
        expected.reverse()
    assert await listed_ids(http, params) == expected


async def test_a_filter_matching_nothing_is_an_empty_page(http: httpx.AsyncClient) -> None:
    response = await http.get("/runs", params={"created_at[lt]": "2000-01-01T00:00:00Z"})
    assert response.json() == {
        "items": [],
        "pagination": {
            "has_more_before": False,
            "has_more_after": False,
            "next_cursor": None,
            "prev_cursor": None,
        },
    }
