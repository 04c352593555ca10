"""The runql command: migrate, demo, and a real server on a loopback port."""

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _runql(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runql", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RUNQL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "RUNQL_ENV": "development",
    }


def test_migrate_then_demo_loads_runs_once(env: dict[str, str]) -> None:
    assert "migrated" in _runql(env, "migrate").stdout
    assert "loaded 30 demo runs" in _runql(env, "demo", "--runs", "30", "--if-empty").stdout
    assert "no demo data added" in _runql(env, "demo", "--if-empty").stdout


def test_a_bad_setting_is_a_clear_error(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runql", "migrate"],
        env={**env, "RUNQL_ENV": "staging"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "RUNQL_ENV must be one of development, production" in result.stderr
    assert "Traceback" not in result.stderr


@dataclass
class Server:
    url: str
    output: list[str]
    key: str

    def post(
        self, query: str, variables: dict[str, object] | None = None, key: str | None = None
    ) -> httpx.Response:
        return httpx.post(
            self.url,
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {key or self.key}"},
            timeout=10,
        )


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    _runql(env, "migrate")
    _runql(env, "demo", "--runs", "20")
    secret = _runql(env, "keys", "create", "--name", "tests").stdout.strip().splitlines()[-1]
    env["RUNQL_DEV_KEY_FILE"] = str(tmp_path / "dev-key")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "runql", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
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
        yield Server(url, [], secret)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
        assert url in output  # `serve` prints where it listens


def test_serve_answers_graphql_and_graphiql(server: Server, env: dict[str, str]) -> None:
    page = httpx.get(server.url, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    dev_key = Path(env["RUNQL_DEV_KEY_FILE"]).read_text().strip()
    assert f"Bearer {dev_key}" in page.text  # development: GraphiQL starts with the dev key
    query = "{ runs(first: 3) { totalCount edges { node { id } } } }"
    body = server.post(query).json()
    assert body["data"]["runs"]["totalCount"] == 20
    assert len(body["data"]["runs"]["edges"]) == 3
    assert body["extensions"]["sql"]["statements"] == 2
    assert server.post(query, key=dev_key).json()["data"]["runs"]["totalCount"] == 20


def test_serve_refuses_requests_without_a_valid_key(server: Server) -> None:
    for headers in ({}, {"Authorization": "Bearer runql_sk_wrong"}, {"Authorization": "Basic x"}):
        response = httpx.post(
            server.url, json={"query": "{ runs { totalCount } }"}, headers=headers, timeout=10
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_revoked_key_stops_working(server: Server, env: dict[str, str]) -> None:
    made = _runql(env, "keys", "create", "--name", "short-lived", "--org", "acme").stdout
    key_id, secret = made.split()[2], made.strip().splitlines()[-1]
    assert server.post("{ runs { totalCount } }", key=secret).json()["data"]["runs"] == {
        "totalCount": 0
    }  # another organization sees none of the demo's runs
    listed = _runql(env, "keys", "list").stdout
    assert key_id in listed
    assert secret not in listed
    _runql(env, "keys", "revoke", key_id)
    revoked_at = time.monotonic()  # the server hears of it within a second (its key cache)
    while server.post("{ runs { totalCount } }", key=secret).status_code != 401:
        assert time.monotonic() - revoked_at < 1.0
        time.sleep(0.05)


def test_a_run_for_the_demo_echo_agent_goes_to_success(server: Server, env: dict[str, str]) -> None:
    def gql(query: str, variables: dict[str, object] | None = None) -> dict[str, object]:
        body = server.post(query, variables).json()
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    agents = gql("{ agents(first: 10) { edges { node { id kind } } } }")["agents"]
    echo = next(e["node"]["id"] for e in agents["edges"] if e["node"]["kind"] == "echo")  # type: ignore[index]
    created = gql(
        'mutation($a: ID!) { createRun(input: {agentId: $a, content: {text: "ping"}})'
        " { run { id status } } }",
        {"a": echo},
    )
    run = created["createRun"]["run"]  # type: ignore[index]
    assert run["status"] == "PENDING"
    seen = [run["status"]]
    deadline = time.monotonic() + 30
    detail = (
        "query($id: ID!) { run(id: $id) { status messageGroup { type "
        "messages { content { parts { text } } } } } }"
    )
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
            "ORDER BY seq",
            (run_id,),
        ).fetchall()
    return [(int(seq), status) for seq, status in rows]
