"""Helpers for tests that start runql processes: a free loopback port, the runql command."""

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def runql(env: dict[str, str], *args: str) -> str:
    """Run `python -m runql ARGS` to completion; its standard output."""
    return subprocess.run(
        [sys.executable, "-m", "runql", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
