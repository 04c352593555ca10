"""The npm graphql-ws client, written by others, follows a run on a real server."""

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.subscriptions.conftest import Live

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("graphql_ws_client.mjs")
RUN_EVENTS = """subscription($id: ID!) { runEvents(runId: $id) { seq type run { status } } }"""

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")


async def _node_subscribe(live: Live, query: str, variables: dict[str, object]) -> list[str]:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        live.ws_url,
        live.key,
        query,
        json.dumps(variables),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode().splitlines()


async def test_graphql_ws_client_follows_a_run_to_success(live: Live) -> None:
    run_id = await live.create_run()
    lines = await _node_subscribe(live, RUN_EVENTS, {"id": run_id})
    assert lines[-1] == "complete"
    events = [json.loads(line)["data"]["runEvents"] for line in lines[:-1]]
    assert [event["seq"] for event in events] == [1, 2, 3, 4]
    assert events[-1]["run"]["status"] == "SUCCESS"


async def test_graphql_ws_client_sees_errors_with_codes(live: Live) -> None:
    lines = await _node_subscribe(live, RUN_EVENTS, {"id": "run_AAAAAAAAAAAAAAAAAAAA"})
    first = json.loads(lines[0])
    assert first["errors"][0]["extensions"]["code"] == "NOT_FOUND"
