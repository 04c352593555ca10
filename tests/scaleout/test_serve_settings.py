"""How many processes `runql serve` runs: RUNQL_SERVE_WORKERS or `--workers`, else one per core
in production and one in development; nonsense is refused by name, before anything starts."""

import subprocess
import sys
from pathlib import Path

import pytest

from runql.settings import Environment, Settings, SettingsError, usable_cores
from tests.processes import ROOT


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("SERVE_WORKERS", "ENV"):
        monkeypatch.delenv(f"RUNQL_{name}", raising=False)
    return monkeypatch


def test_by_default_production_serves_a_process_per_core_and_development_one(
    clean_env: pytest.MonkeyPatch,
) -> None:
    assert Settings.from_env().server_processes == usable_cores()
    clean_env.setenv("RUNQL_ENV", Environment.DEVELOPMENT.value)
    assert Settings.from_env().server_processes == 1
    assert (
        "| `RUNQL_SERVE_WORKERS` | one per core in production, 1 in development |"
        in (ROOT / "README.md").read_text()
    )


def test_the_variable_sets_it_in_either_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RUNQL_SERVE_WORKERS", "3")
    assert Settings.from_env().server_processes == 3
    clean_env.setenv("RUNQL_ENV", Environment.DEVELOPMENT.value)
    assert Settings.from_env().server_processes == 3


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_a_count_below_1_or_not_a_number_is_a_clear_error(
    clean_env: pytest.MonkeyPatch, value: str
) -> None:
    clean_env.setenv("RUNQL_SERVE_WORKERS", value)
    with pytest.raises(SettingsError, match="RUNQL_SERVE_WORKERS must be"):
        Settings.from_env()


def _serve(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "RUNQL_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "runql", "serve", "--port", "1", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_workers_below_1_are_refused_by_the_command_line(tmp_path: Path) -> None:
    result = _serve(f"sqlite+aiosqlite:///{tmp_path / 'runql.db'}", "--workers", "0")

    assert result.returncode == 2
    assert "--workers: must be a whole number of at least 1, not '0'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_a_port_out_of_range_is_refused_by_the_command_line(tmp_path: Path, port: str) -> None:
    result = _serve(f"sqlite+aiosqlite:///{tmp_path / 'runql.db'}", "--port", port)

    assert result.returncode == 2
    assert f"--port: must be a whole number from 1 to 65535, not '{port}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_in_memory_database_is_not_shared_by_several_processes() -> None:
    result = _serve("sqlite+aiosqlite://", "--workers", "2")

    assert result.returncode == 2
    assert "in-memory SQLite database lives in one process" in result.stderr
    assert "Traceback" not in result.stderr
