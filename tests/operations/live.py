"""A real `runql serve` on a loopback port, over a SQLite file migrated by the real migrations
and loaded with demo data, for the tests that need the whole server (logs, websockets, the
browser)."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.processes import free_port, runql

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 30


@dataclass
class LiveServer:
    base: str
    key: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    logs: Path  # stdout and stderr go to files: a pipe nobody reads would block the server
    output: dict[str, str] = field(default_factory=dict)

    @property
    def graphql_url(self) -> str:
        return f"{self.base}/graphql"

    @property
    def dev_key(self) -> str | None:
        path = Path(self.env["RUNQL_DEV_KEY_FILE"])
        return path.read_text().strip() if path.exists() else None

    def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return httpx.post(
            self.graphql_url,
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.key}", **(headers or {})},
            timeout=10,
        )

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self.post(query, variables).json()
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    def written(self, stream: str) -> str:
        return (self.logs / f"serve.{stream}").read_text()

    def stop(self) -> dict[str, str]:
        """Stop the server; what it wrote on stdout and stderr."""
        if not self.output:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.output.update(stdout=self.written("stdout"), stderr=self.written("stderr"))
        return self.output


def _wait_until_ready(server: LiveServer) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            if httpx.get(f"{server.base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    output = server.stop()
    raise AssertionError(
        f"runql serve was not ready within {START_SECONDS} s:\n{output['stdout']}{output['stderr']}"
    )


@contextmanager
def live_server(
    directory: Path, demo_runs: int = 20, environ: dict[str, str] | None = None, **settings: str
) -> Iterator[LiveServer]:
    """`settings` are RUNQL_* variables without the prefix: live_server(d, ENV="development");
    `environ` holds any other variables."""
    env = {
        **os.environ,
        "RUNQL_DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'live.db'}",
        "RUNQL_DEV_KEY_FILE": str(directory / "dev-key"),
        **(environ or {}),
        **{f"RUNQL_{name}": value for name, value in settings.items()},
    }
    runql(env, "migrate")
    runql(env, "demo", "--runs", str(demo_runs))
    key = runql(env, "keys", "create", "--name", "tests").strip().splitlines()[-1]
    port = free_port()
    with (
        (directory / "serve.stdout").open("wb") as stdout,
        (directory / "serve.stderr").open("wb") as stderr,
    ):
        process = subprocess.Popen(
            [sys.executable, "-m", "runql", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", key, env, process, directory)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        server.stop()
