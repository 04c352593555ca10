"""Apollo Client's normalized cache over the shipped documents (tests/examples/apollo_cache.mjs,
with the client of examples/apollo-client.mjs): the feed's second page survives run details and
thread histories, with no refetch and no warning; a runStatus subscription updates the cached
Run in place."""

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.examples.conftest import run_example
from tests.operations.live import LiveServer

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")


# Runs the server's workers have yet to finish: PENDING ones, and RUNNING ones they started
# (the demo's own RUNNING runs started before it was loaded and stay so for minutes).
UNFINISHED = """query($since: DateTime!) {
  pending: runs(filter: {status: [PENDING]}) { totalCount }
  started: runs(filter: {status: [RUNNING], startedAt: {gte: $since}}) { totalCount } }"""


def _pending_runs_done(server: LiveServer, seconds: float = 30) -> None:
    """The demo's PENDING runs are executed by the server's workers as it starts; one that ends
    while the script runs gains a reply group that the feed loaded before did not have, and
    Apollo rightly refetches the feed. The script starts once they are done."""
    since = datetime.now(UTC) - timedelta(minutes=2)  # before the server's workers started
    deadline = time.monotonic() + seconds
    while True:
        answer = httpx.post(
            server.graphql_url,
            timeout=10,
            json={"query": UNFINISHED, "variables": {"since": since.isoformat()}},
            headers={"Authorization": f"Bearer {server.key}"},
        ).json()["data"]
        if answer["pending"]["totalCount"] == 0 and answer["started"]["totalCount"] == 0:
            return
        assert time.monotonic() < deadline, f"the demo's pending runs did not finish: {answer}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def report(examples_server: LiveServer) -> dict[str, Any]:
    """One run of the script (once the demo's pending runs are done); each test reads its
    part."""
    _pending_runs_done(examples_server)
    output: dict[str, Any] = json.loads(
        run_example(examples_server, "node", "tests/examples/apollo_cache.mjs")
    )
    return output


def test_fetch_more_appends_the_second_page(report: dict[str, Any]) -> None:
    assert report["afterFetchMore"] == 20


def test_the_watched_feed_keeps_both_pages_after_details_and_histories(
    report: dict[str, Any],
) -> None:
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
