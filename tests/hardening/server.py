"""A real runql server: `python -m runql serve` in a subprocess on a loopback port, on a
migrated SQLite file, with an API key made by `runql keys create`."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.processes import free_port, runql

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Server:
    url: str
    key: str
    log: Path


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start within 30 s")


@contextmanager
def running_server(folder: Path, demo_runs: int = 0, **settings: str) -> Iterator[Server]:
    """Production settings without workers (no run executes, so no agent calls out), changed
    by `settings` (RUNQL_ variables without the prefix)."""
    env = {
        **os.environ,
        "RUNQL_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'runql.db'}",
        "RUNQL_ENV": "production",
        "RUNQL_WORKERS": "0",
        "RUNQL_DEV_KEY_FILE": str(folder / "dev-key"),
        **{f"RUNQL_{name}": value for name, value in settings.items()},
    }
    runql(env, "migrate")
    if demo_runs:
        runql(env, "demo", "--runs", str(demo_runs))
    key = runql(env, "keys", "create", "--name", "hardening").strip().splitlines()[-1]
    port = free_port()
    log = folder / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "runql", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        _wait_until_up(url, process, log)
        yield Server(url, key, log)
    finally:
        process.terminate()
        process.wait(timeout=20)
