"""Every document in queries/ gives the same body on both executors, over many variables, and
runs on the fast path."""

from pathlib import Path
from typing import Any

import pytest

from tests.fastpath.conftest import BothExecutors, DemoIds

QUERIES = Path(__file__).resolve().parents[2] / "queries"
DOCUMENTS = {path.stem: path.read_text() for path in sorted(QUERIES.glob("*.graphql"))}


async def _run_ids(both: BothExecutors) -> list[dict[str, Any]]:
    page = await both.standard(
        "{ runs(first: 100) { edges { node { id threadId messageGroupId status } } } }"
    )
    return [edge["node"] for edge in page.body["data"]["runs"]["edges"]]


def test_every_frontend_document_is_compared() -> None:
    assert set(DOCUMENTS) == {"feed", "node", "run-detail", "thread-history"}


@pytest.mark.parametrize("first", [0, 1, 7, 20, 100])
async def test_the_feed_is_the_same(both: BothExecutors, first: int) -> None:
    ran = await both.compare(DOCUMENTS["feed"], {"first": first})
    assert ran.executor == "fast"
    assert len(ran.body["data"]["runs"]["edges"]) == first


async def test_the_feed_pages_to_the_end_the_same(both: BothExecutors) -> None:
    after, pages = None, 0
    while True:
        ran = await both.compare(DOCUMENTS["feed"], {"first": 33, "after": after})
        assert ran.executor == "fast"
        pages += 1
        info = ran.body["data"]["runs"]["pageInfo"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert pages == 4  # 120 demo runs


async def test_run_detail_is_the_same_for_every_kind_of_run(both: BothExecutors) -> None:
    runs = await _run_ids(both)
    by_status = {run["status"]: run["id"] for run in runs}
    assert len(by_status) >= 4
    for run_id in [*by_status.values(), "run_00000000000000000000"]:
        ran = await both.compare(DOCUMENTS["run-detail"], {"id": run_id})
        assert ran.executor == "fast"


async def test_thread_history_is_the_same(both: BothExecutors) -> None:
    runs = await _run_ids(both)
    for thread_id in list(dict.fromkeys(run["threadId"] for run in runs))[:6]:
        for first in (1, 3, 20):
            ran = await both.compare(DOCUMENTS["thread-history"], {"id": thread_id, "first": first})
            assert ran.executor == "fast"


async def test_nodes_of_every_kind_are_the_same(both: BothExecutors, demo_ids: DemoIds) -> None:
    ids = [values[0] for values in demo_ids.by_kind.values()]
    ids += ["file_00000000000000000000", "run_00000000000000000000", ids[0]]
    ran = await both.compare(DOCUMENTS["node"], {"ids": ids})
    assert ran.executor == "fast"
    assert ran.body["data"]["nodes"][-3:-1] == [None, None]


@pytest.mark.parametrize(
    ("name", "variables", "field"),
    [
        ("feed", {"first": 101}, "first"),
        ("feed", {"first": -1}, "first"),
        ("feed", {"first": 5, "after": "garbage"}, "after"),
        ("run-detail", {"id": "nope"}, "id"),
        ("run-detail", {"id": "thread_00000000000000000000"}, "id"),
        ("thread-history", {"id": "run_00000000000000000000"}, "id"),
        ("node", {"ids": ["run_00000000000000000000", "bad"]}, "ids[1]"),
        ("node", {"ids": ["run_00000000000000000000"] * 101}, "ids"),
    ],
)
async def test_refused_arguments_are_the_same_errors(
    both: BothExecutors, name: str, variables: dict[str, Any], field: str
) -> None:
    ran = await both.compare(DOCUMENTS[name], variables)
    assert ran.executor == "fast"
    assert [error["extensions"]["field"] for error in ran.body["errors"]] == [field]
