"""/healthz answers while the process runs; /readyz says whether it can serve, naming what
fails: the database, its migrations, the executor's workers. Neither needs an API key."""

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from runql.app import create_app
from runql.settings import Environment, Settings
from runql.storage.database import Database
from runql.storage.migrate import alembic_config, head_revision, upgrade
from tests.operations.helpers import client, lifespan, settings_for


def _head() -> str:
    head = head_revision()
    assert head is not None, "runql's migrations have a head"
    return head


HEAD = _head()
AtRevision = Callable[[str | None], Awaitable[Database]]


def _settings(workers: int = 0) -> Settings:
    return Settings(env=Environment.PRODUCTION, workers=workers)


def _previous_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_revision(HEAD)
    assert head is not None
    assert isinstance(head.down_revision, str)
    return head.down_revision


@pytest.fixture
async def sqlite_at(tmp_path: Path) -> AsyncIterator[AtRevision]:
    """A SQLite file migrated up to a given revision (None: not at all)."""
    made: list[Database] = []

    async def at(revision: str | None) -> Database:
        url = f"sqlite+aiosqlite:///{tmp_path / 'partial.db'}"
        if revision is not None:
            upgrade(url, revision)
        made.append(Database.from_url(url))
        return made[-1]

    yield at
    for database in made:
        await database.dispose()


async def test_healthz_answers_without_a_key(database: Database) -> None:
    async with client(create_app(_settings(), database)) as http:
        response = await http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["cache-control"] == "no-store"


async def test_readyz_is_ready_on_a_migrated_database(database: Database) -> None:
    async with client(create_app(_settings(), database)) as http:
        response = await http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "failing": [],
        "checks": {
            "database": {"ok": True, "detail": "answers"},
            "migrations": {"ok": True, "detail": f"at {HEAD}"},
        },
    }


async def test_readyz_names_a_missing_migration(sqlite_at: AtRevision) -> None:
    previous = _previous_revision()
    async with client(create_app(_settings(), await sqlite_at(previous))) as http:
        response = await http.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unready"
    assert body["failing"] == ["migrations"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["migrations"] == {
        "ok": False,
        "detail": f"at {previous}, not {HEAD}: run `runql migrate`",
    }


async def test_readyz_names_an_unmigrated_database(sqlite_at: AtRevision) -> None:
    async with client(create_app(_settings(), await sqlite_at(None))) as http:
        response = await http.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["migrations"]["detail"].startswith("at no revision")


async def test_readyz_names_an_unreachable_database() -> None:
    # A PostgreSQL server on a loopback port where none listens: refused at once.
    database = Database.from_url("postgresql+asyncpg://runql:secret@127.0.0.1:1/runql")
    try:
        async with client(create_app(_settings(), database)) as http:
            response = await http.get("/readyz")
    finally:
        await database.dispose()

    assert response.status_code == 503
    assert response.json() == {
        "status": "unready",
        "failing": ["database"],
        "checks": {"database": {"ok": False, "detail": "the database did not answer"}},
    }
    assert "secret" not in response.text
    assert "127.0.0.1" not in response.text


async def test_readyz_needs_the_configured_workers_running(database: Database) -> None:
    app = create_app(settings_for(database, workers=2), database)
    async with client(app) as http:
        before = await http.get("/readyz")  # the lifespan has not started them
        async with lifespan(app):
            running = await http.get("/readyz")
        after = await http.get("/readyz")  # stopped at shutdown

    assert running.status_code == 200
    assert running.json()["checks"]["workers"] == {"ok": True, "detail": "2 running"}
    for response in (before, after):
        assert response.status_code == 503
        assert response.json()["failing"] == ["workers"]
        assert response.json()["checks"]["workers"] == {
            "ok": False,
            "detail": "2 configured, not running",
        }
