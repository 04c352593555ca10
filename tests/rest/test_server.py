"""The spec's curl examples against a real `python -m runql serve` on a loopback port."""

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import free_port, runql
from tests.rest.spec_example import (
    CURL_GET_HEADERS,
    CURL_POST_HEADERS,
    check_spec_keys,
    spec_post_body,
)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    url: str
    key: str
    database: Path

    def headers(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, "Authorization": f"Bearer {self.key}"}

    def echo_agent_id(self) -> str:
        with sqlite3.connect(self.database) as connection:
            row = connection.execute("SELECT id FROM agents WHERE kind = 'echo'").fetchone()
        return str(row[0])


def _wait_until_listening(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("the server did not start within 30 s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = tmp_path_factory.mktemp("rest-server") / "runql.db"
    env = {
        **os.environ,
        "RUNQL_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "RUNQL_ENV": "production",
        "RUNQL_SHUTDOWN_GRACE_SECONDS": "1",
    }
    runql(env, "migrate")
    runql(env, "demo", "--runs", "20")
    key = runql(env, "keys", "create", "--name", "rest-tests").strip().splitlines()[-1]
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "runql", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_listening(f"{url}/openapi.json", process)
        yield Server(url, key, database)
    finally:
        process.terminate()
        process.communicate(timeout=20)


def _until_finished(server: Server, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run: dict[str, Any] = httpx.get(
            f"{server.url}/runs/{run_id}", headers=server.headers({}), timeout=10
        ).json()
        if run["status"] in ("success", "error", "cancelled"):
            return run
        time.sleep(0.05)
    pytest.fail(f"run {run_id} did not finish within 30 s")


def test_the_spec_curl_examples_work_unchanged(server: Server) -> None:
    listed = httpx.get(f"{server.url}/runs", headers=server.headers(CURL_GET_HEADERS), timeout=10)
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 20
    for item in listed.json()["items"]:
        check_spec_keys(item)
    created = httpx.post(
        f"{server.url}/runs",
        content=spec_post_body(server.echo_agent_id()),
        headers=server.headers(CURL_POST_HEADERS),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    run = created.json()
    check_spec_keys(run)
    assert run["status"] == "pending"
    got = httpx.get(
        f"{server.url}/runs/{run['id']}", headers=server.headers(CURL_GET_HEADERS), timeout=10
    )
    assert got.status_code == 200
    finished = _until_finished(server, run["id"])  # the server's workers run the echo agent
    assert finished["status"] == "success"
    shown = check_spec_keys(finished)
    assert "message_group.messages[].content.parts[].text" in shown
    reply = finished["message_group"]["messages"][0]["content"]["parts"][0]["text"]
    assert reply == "Hello, world!"


def test_the_openapi_document_is_public(server: Server) -> None:
    response = httpx.get(f"{server.url}/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.json()["openapi"] == "3.1.0"
    assert httpx.get(f"{server.url}/runs", timeout=10).status_code == 401
