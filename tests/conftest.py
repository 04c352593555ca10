"""Shared fixtures: real databases (SQLite files, PostgreSQL databases), migrated by the real
migrations, with demo data."""

import asyncio
import os
import traceback
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import httpx
import pytest

from runql.app import create_app
from runql.auth.keys import create_key
from runql.demo import load_demo
from runql.resolvers.context import Context
from runql.served_schema import schema_for
from runql.settings import Environment, Settings
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID
from tests.backends import POSTGRES_SERVER, PostgresBackend, Prepare, SQLiteBackend

DEMO_RUNS = 120
# A server the suite starts is one process unless its test asks for more: rate limits, metrics
# and persisted queries are per process, and tests count them (production would start one a core).
os.environ.setdefault("RUNQL_SERVE_WORKERS", "1")
DEMO_NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


# Files whose tests start several runql processes and hold them to leases or latencies: under
# pytest-xdist they run on one worker, one after another, as in a plain run, never beside each
# other.
ONE_WORKER = (
    "tests/scaleout/test_cluster.py",
    "tests/scaleout/test_serve_workers.py",
    "tests/test_bench.py",
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, with the ONE_WORKER files as one unit."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):  # type: ignore[misc]  # xdist ships no types
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return ONE_WORKER[0] if path in ONE_WORKER else path

    return Scheduling(config, log)


def _connections_say_where_they_were_made() -> None:
    """An asyncpg or aiosqlite connection left open is finalized by the garbage collector later,
    inside whichever test runs then, whose unraisable ResourceWarning fails it; asyncpg says where
    the connection was made only in asyncio's debug mode, aiosqlite never. Every connection made
    in the suite keeps that stack, so that such a failure names its source."""
    made = asyncpg.connection.Connection.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        if self._source_traceback is None:
            self._source_traceback = "".join(traceback.format_stack(limit=40))

    asyncpg.connection.Connection.__init__ = init

    opened = aiosqlite.Connection.__init__

    def open_here(self: Any, *args: Any, **kwargs: Any) -> None:
        opened(self, *args, **kwargs)
        self._made_at = "".join(traceback.format_stack(limit=40))

    def finalize_saying_where(self: Any) -> None:  # aiosqlite's __del__, with the stack
        if self._connection is None:
            return
        made_at = getattr(self, "_made_at", "(not recorded: its __init__ did not finish)")
        warnings.warn(
            f"aiosqlite connection deleted before being closed, made at:\n{made_at}",
            ResourceWarning,
            stacklevel=1,
        )
        self.stop()

    aiosqlite.Connection.__init__ = open_here  # type: ignore[method-assign]
    aiosqlite.Connection.__del__ = finalize_saying_where  # type: ignore[method-assign]


_connections_say_where_they_were_made()


Backend = SQLiteBackend | PostgresBackend


class Backends:
    """Each backend and its templates, made once per pytest process. pytest tears a
    parametrized session fixture down whenever the next test takes its other parameter: once
    in a plain run, which orders tests by parameter, but at every test file under
    pytest-xdist's loadfile, which runs a file's SQLite and PostgreSQL tests together."""

    def __init__(self, folders: pytest.TempPathFactory) -> None:
        self.folders = folders
        self.made: dict[str, Backend] = {}
        self.unreachable: str | None = None
        self.templates: dict[tuple[str, str], str] = {}

    def get(self, kind: str) -> Backend:
        if kind not in self.made:
            self.made[kind] = self._make(kind)
        return self.made[kind]

    def _make(self, kind: str) -> Backend:
        if kind == "sqlite":
            return SQLiteBackend(self.folders.mktemp("templates"))
        if self.unreachable is None:
            self.unreachable = asyncio.run(PostgresBackend.reachable()) or ""
        if self.unreachable:
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL is required in CI and not reachable: {self.unreachable}")
            pytest.skip(
                f"PostgreSQL is not reachable at {POSTGRES_SERVER} "
                f"({self.unreachable}); start one or set RUNQL_TEST_POSTGRES"
            )
        return PostgresBackend()

    def template(
        self, backend: Backend, label: str, prepare: Prepare | None = None, base: str | None = None
    ) -> str:
        key = (backend.name, label)
        if key not in self.templates:
            self.templates[key] = backend.template(label, prepare, base)
        return self.templates[key]

    def close(self) -> None:
        for made in self.made.values():
            made.close()


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    made = Backends(tmp_path_factory)
    yield made
    made.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, backends: Backends) -> Backend:
    """Every test that uses a database runs once on SQLite and once on PostgreSQL."""
    return backends.get(request.param)


async def _load_demo(url: str) -> None:
    database = Database.from_url(url)
    await load_demo(database, runs=DEMO_RUNS, seed=11, now=DEMO_NOW)
    await database.dispose()


@pytest.fixture(scope="session")
def migrated_template(backends: Backends, backend: Backend) -> str:
    return backends.template(backend, "empty")


@pytest.fixture(scope="session")
def demo_template(backends: Backends, backend: Backend, migrated_template: str) -> str:
    return backends.template(backend, "demo", _load_demo, base=migrated_template)


@pytest.fixture
async def database(
    backend: SQLiteBackend | PostgresBackend, migrated_template: str, tmp_path: Path
) -> AsyncIterator[Database]:
    url = await backend.copy(migrated_template, tmp_path)
    db = Database.from_url(url)
    yield db
    await db.dispose()
    backend.release(url)


@pytest.fixture
async def demo_database(
    backend: SQLiteBackend | PostgresBackend, demo_template: str, tmp_path: Path
) -> AsyncIterator[Database]:
    url = await backend.copy(demo_template, tmp_path)
    db = Database.from_url(url)
    yield db
    await db.dispose()
    backend.release(url)


@pytest.fixture
def settings() -> Settings:
    return Settings(env=Environment.DEVELOPMENT, workers=0)


class GraphQLClient:
    """Runs operations in-process, as the HTTP endpoint would, and returns the JSON body."""

    def __init__(
        self, database: Database, settings: Settings, org_id: str = DEFAULT_ORG_ID
    ) -> None:
        self.database = database
        self.settings = settings
        self.org_id = org_id
        self.schema = schema_for(settings)

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, operation_name: str | None = None
    ) -> dict[str, Any]:
        context = Context.create(self.database, self.settings, self.org_id)
        result = await self.schema.execute(
            query,
            variable_values=variables,
            context_value=context,
            operation_name=operation_name,
        )
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            body["extensions"] = result.extensions
        return body


@pytest.fixture
def gql(demo_database: Database, settings: Settings) -> GraphQLClient:
    """GraphQL over the demo data."""
    return GraphQLClient(demo_database, settings)


@pytest.fixture
def gql_empty(database: Database, settings: Settings) -> GraphQLClient:
    """GraphQL over an empty, migrated database."""
    return GraphQLClient(database, settings)


@pytest.fixture
async def api_key(demo_database: Database) -> str:
    """A key of the default organization, which holds the demo data."""
    return (await create_key(demo_database, "tests")).secret


@pytest.fixture
async def http(
    demo_database: Database, settings: Settings, api_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app (over ASGI), authenticated with `api_key`."""
    app = create_app(settings, demo_database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://runql.test",
        headers={"Authorization": f"Bearer {api_key}"},
    ) as client:
        yield client
