"""The runql command: migrate, demo, and a real server on a loopback port."""

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _runql(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runql", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "RUNQL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
            "RUNQL_ENV": "development"}


def test_migrate_then_demo_loads_runs_once(env: dict[str, str]) -> None:
    assert "migrated" in _runql(env, "migrate").stdout
    assert "loaded 30 demo runs" in _runql(env, "demo", "--runs", "30", "--if-empty").stdout
    assert "no demo data added" in _runql(env, "demo", "--if-empty").stdout


def test_a_bad_setting_is_a_clear_error(env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "runql", "migrate"],
                            env={**env, "RUNQL_ENV": "staging"}, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "RUNQL_ENV must be one of development, production" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    _runql(env, "migrate")
    _runql(env, "demo", "--runs", "20")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "runql", "serve", "--port", str(port)], env=env, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the server did not start within 30 s")
        yield url
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
        assert url in output  # `serve` prints where it listens


def test_serve_answers_graphql_and_graphiql(server: str) -> None:
    page = httpx.get(server, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    query = "{ runs(first: 3) { totalCount edges { node { id } } } }"
    body = httpx.post(server, json={"query": query}, timeout=10).json()
    assert body["data"]["runs"]["totalCount"] == 20
    assert len(body["data"]["runs"]["edges"]) == 3
    assert body["extensions"]["sql"]["statements"] == 2


def test_a_run_for_the_demo_echo_agent_goes_to_success(server: str, env: dict[str, str]) -> None:
    def gql(query: str, variables: dict[str, object] | None = None) -> dict[str, object]:
        body = httpx.post(server, json={"query": query, "variables": variables or {}},
                          timeout=10).json()
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    agents = gql("{ agents(first: 10) { edges { node { id kind } } } }")["agents"]
    echo = next(e["node"]["id"] for e in agents["edges"] if e["node"]["kind"] == "echo")  # type: ignore[index]
    created = gql("mutation($a: ID!) { createRun(input: {agentId: $a, content: {text: \"ping\"}})"
                  " { run { id status } } }", {"a": echo})
    run = created["createRun"]["run"]  # type: ignore[index]
    assert run["status"] == "PENDING"
    seen = [run["status"]]
    deadline = time.monotonic() + 30
    detail = ("query($id: ID!) { run(id: $id) { status messageGroup { type "
              "messages { content { parts { text } } } } } }")
    while seen[-1] != "SUCCESS" and time.monotonic() < deadline:
        time.sleep(0.05)
        current = gql(detail, {"id": run["id"]})["run"]
        if current["status"] != seen[-1]:  # type: ignore[index]
            seen.append(current["status"])  # type: ignore[index]
    assert seen == ["PENDING", "RUNNING", "SUCCESS"]
    reply = current["messageGroup"]  # type: ignore[index]
    assert reply["type"] == "ASSISTANT_MESSAGE"
    assert reply["messages"][0]["content"]["parts"] == [{"text": "ping"}]
    events = _run_events(env, run["id"])
    assert [seq for seq, _ in events] == list(range(1, len(events) + 1))
    assert [status for _, status in events if status] == ["pending", "running", "success"]


def _run_events(env: dict[str, str], run_id: str) -> list[tuple[int, str | None]]:
    """The run's event log, read straight from the server's database file."""
    path = env["RUNQL_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT seq, json_extract(payload, '$.status') FROM run_events WHERE run_id = ? "
            "ORDER BY seq", (run_id,)).fetchall()
    return [(int(seq), status) for seq, status in rows]
