"""One real `runql serve` (SQLite, demo data, workers running the Echo agent) for every test of
tests/examples, and the way they run an example against it."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.operations.live import ROOT, LiveServer, live_server

EXAMPLES = ROOT / "examples"
TIMEOUT_SECONDS = 60


@pytest.fixture(scope="package")
def examples_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("examples"), demo_runs=30) as running:
        yield running


def run_example(server: LiveServer, *command: str | Path) -> str:
    """Run `command` from the repository's root with the server's URL and a key in RUNQL_URL
    and RUNQL_KEY, as the examples' headers say; its standard output."""
    env = {**os.environ, "RUNQL_URL": server.graphql_url, "RUNQL_KEY": server.key}
    ran = subprocess.run(
        [str(part) for part in command],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
    )
    assert ran.returncode == 0, f"{ran.stdout}\n{ran.stderr}"
    assert ran.stderr == "", ran.stderr
    return ran.stdout
