"""Apollo Client's normalized cache over the shipped documents (tests/examples/apollo_cache.mjs,
with the client of examples/apollo-client.mjs): the feed's second page survives run details and
thread histories, with no refetch and no warning; a runStatus subscription updates the cached
Run in place."""

import json
import shutil
from typing import Any

import pytest

from tests.examples.conftest import run_example
from tests.operations.live import LiveServer

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")


@pytest.fixture(scope="module")
def report(examples_server: LiveServer) -> dict[str, Any]:
    """One run of the script; each test reads its part."""
    output: dict[str, Any] = json.loads(
        run_example(examples_server, "node", "tests/examples/apollo_cache.mjs"))
    return output


def test_fetch_more_appends_the_second_page(report: dict[str, Any]) -> None:
    assert report["afterFetchMore"] == 20


def test_the_watched_feed_keeps_both_pages_after_details_and_histories(
        report: dict[str, Any]) -> None:
    assert report["feedEdges"] == 20
    assert report["feedComplete"] == 20
    assert len(set(report["feedIds"])) == 20
    assert set(report["pickedIds"]) <= set(report["feedIds"])


def test_the_feed_is_requested_once_a_page(report: dict[str, Any]) -> None:
    assert report["requests"][:2] == ["Feed", "Feed"]
    assert report["requests"].count("Feed") == 2
    assert report["requests"].count("RunDetail") == 5  # four of the feed, the followed run


def test_apollo_writes_no_warning(report: dict[str, Any]) -> None:
    assert report["console"] == []


def test_run_status_updates_the_cached_run_in_place(report: dict[str, Any]) -> None:
    assert report["subscribed"][-1] == "SUCCESS"
    assert report["watchedStatuses"][-1] == "SUCCESS"
    assert report["watchedStatuses"][0] in {"PENDING", "RUNNING"}
    assert report["cachedRun"]["status"] == "SUCCESS"
    assert report["cachedRun"]["completedAt"] is not None
