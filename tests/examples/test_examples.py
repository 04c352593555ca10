"""Each client set-up of examples/ runs as written against a live runql and prints what it
says it prints; the graphql-codegen config's output compiles under `tsc --strict`."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.examples.conftest import EXAMPLES, TIMEOUT_SECONDS, run_example
from tests.operations.live import LiveServer
from tests.processes import ROOT

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")

RUN_ID = r"run_[A-Za-z0-9]{20}"
NODE_BIN = ROOT / "node_modules" / ".bin"


def _statuses(lines: list[str]) -> list[str]:
    return [line.removeprefix("runStatus: ") for line in lines if line.startswith("runStatus: ")]


def _follows_a_run_to_success(lines: list[str]) -> None:
    """`created run_…`, then runStatus lines: the status then, the changes in order, SUCCESS."""
    created = lines.index(next(line for line in lines if line.startswith("created ")))
    assert re.fullmatch(f"created {RUN_ID}", lines[created])
    statuses = _statuses(lines)
    assert lines[created + 1 :] == [f"runStatus: {status}" for status in statuses]
    assert statuses[-1] == "SUCCESS"
    order = [["PENDING", "RUNNING", "SUCCESS"].index(status) for status in statuses]
    assert order == sorted(order)


def test_apollo_client_pages_runs_and_follows_a_run(examples_server: LiveServer) -> None:
    lines = run_example(examples_server, "node", EXAMPLES / "apollo-client.mjs").splitlines()
    assert re.fullmatch(r"page 1: 5 of \d+ runs", lines[0])
    assert lines[1:3] == ["page 2: 5 more", "list: 10 runs"]
    _follows_a_run_to_success(lines[3:])


def test_urql_reads_runs_and_follows_a_run(examples_server: LiveServer) -> None:
    lines = run_example(examples_server, "node", EXAMPLES / "urql-client.mjs").splitlines()
    assert re.fullmatch(r"page 1: 5 of \d+ runs", lines[0])
    _follows_a_run_to_success(lines[1:])


def test_graphql_ws_follows_a_run_s_events_and_resumes(examples_server: LiveServer) -> None:
    lines = run_example(examples_server, "node", EXAMPLES / "graphql-ws.mjs").splitlines()
    assert re.fullmatch(f"created {RUN_ID}", lines[0])
    events = [line.split() for line in lines[1:-1]]
    assert [int(seq) for seq, _, _ in events] == list(range(1, len(events) + 1))
    assert events[-1][1:] == ["STATUS_CHANGED", "SUCCESS"]
    assert "MESSAGE_ADDED" in {kind for _, kind, _ in events}
    assert lines[-1] == "after 2: " + " ".join(seq for seq, _, _ in events[2:])


def test_python_gql_reads_runs_and_follows_a_run(examples_server: LiveServer) -> None:
    lines = run_example(examples_server, sys.executable, EXAMPLES / "gql_client.py").splitlines()
    assert re.fullmatch(r"page 1: 5 of \d+ runs", lines[0])
    _follows_a_run_to_success(lines[1:])


def test_codegen_output_compiles_with_tsc_strict(tmp_path: Path) -> None:
    """The config generates from schema.graphql and queries/ into a fresh folder (nothing kept
    from an earlier run), and tsc --strict checks the output and the example that uses it."""
    for shared in ("schema.graphql", "queries", "node_modules"):
        (tmp_path / shared).symlink_to(ROOT / shared)
    (tmp_path / "examples").mkdir()
    for name in ("codegen.ts", "tsconfig.json", "typed-feed.ts"):
        shutil.copy(EXAMPLES / name, tmp_path / "examples" / name)
    commands: list[list[str | Path]] = [
        [NODE_BIN / "graphql-codegen", "--config", "examples/codegen.ts"],
        [NODE_BIN / "tsc", "--strict", "-p", "examples"],
    ]
    for command in commands:
        ran = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_SECONDS
        )
        assert ran.returncode == 0, f"{command}: {ran.stdout}\n{ran.stderr}"
    generated = (tmp_path / "examples" / "gql" / "graphql.ts").read_text()
    for document in ("FeedDocument", "RunDetailDocument", "ThreadHistoryDocument", "NodesDocument"):
        assert f"export const {document} = " in generated
