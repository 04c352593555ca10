"""The databases the suite runs on: SQLite always; PostgreSQL where a server is reachable.

Each backend makes a migrated template once per test session (and one with demo data), then
a fresh copy of a template for every test: a file copy on SQLite, `CREATE DATABASE … TEMPLATE`
on PostgreSQL (databases named per session, dropped at its end).
"""

import asyncio
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg

from runql.storage.migrate import upgrade

POSTGRES_SERVER = os.environ.get("RUNQL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
Prepare = Callable[[str], Coroutine[Any, Any, None]]
DROPS_AT_ONCE = 8  # connections of one pytest process dropping databases at once


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


class SQLiteBackend:
    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def template(self, label: str, prepare: Prepare | None = None, base: str | None = None) -> str:
        path = self.folder / f"{label}.db"
        if base is None:
            upgrade(sqlite_url(path))
        else:
            shutil.copy(base.removeprefix("sqlite+aiosqlite:///"), path)
        if prepare is not None:
            asyncio.run(prepare(sqlite_url(path)))
        return sqlite_url(path)

    async def copy(self, template: str, folder: Path) -> str:
        target = folder / "runql.db"
        shutil.copy(template.removeprefix("sqlite+aiosqlite:///"), target)
        return sqlite_url(target)

    def release(self, url: str) -> None:
        """Nothing to do: pytest removes the test's folder."""

    def close(self) -> None:
        pass


def _database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


class PostgresBackend:
    name = "postgresql"

    def __init__(self, server: str = POSTGRES_SERVER) -> None:
        self.server = server
        self.prefix = f"runql_test_{os.getpid()}_{secrets.token_hex(3)}"
        self.made: list[str] = []
        self._count = 0
        self._dropping = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-db")
        self._released: list[str] = []
        self._lock = threading.Lock()

    @staticmethod
    async def reachable(server: str = POSTGRES_SERVER) -> str | None:
        """None when the server answers; else why not."""
        try:
            connection = await asyncio.wait_for(asyncpg.connect(server), 5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as error:
            return f"{type(error).__name__}: {error}"
        await connection.close()
        return None

    def url(self, database: str) -> str:
        base = self.server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        return f"{base}/{database}"

    async def _admin(self, statement: str) -> None:
        connection = await asyncpg.connect(self.server)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    async def _create(self, database: str, template: str | None = None) -> str:
        # PostgreSQL's default strategy (WAL_LOG from 15 on) copies a small template through
        # the WAL; FILE_COPY would force two checkpoints of the whole server per copy.
        source = f" TEMPLATE {template}" if template else ""
        await self._admin(f'CREATE DATABASE "{database}"{source}')
        self.made.append(database)
        return self.url(database)

    def template(self, label: str, prepare: Prepare | None = None, base: str | None = None) -> str:
        name = f"{self.prefix}_{label}"
        url = asyncio.run(self._create(name, _database_of(base) if base else None))
        if base is None:
            upgrade(url)
        if prepare is not None:
            asyncio.run(prepare(url))
        return url

    async def copy(self, template: str, folder: Path) -> str:
        self._count += 1
        return await self._create(f"{self.prefix}_{self._count}", _database_of(template))

    def release(self, url: str) -> None:
        """Drop a test's copy in the background, while the next tests run."""
        database = _database_of(url)
        self.made.remove(database)
        with self._lock:
            self._released.append(database)
        self._dropping.submit(self._drop_released)

    def _drop_released(self) -> None:
        """Every copy released since the last batch, in one batch."""
        with self._lock:
            batch, self._released = self._released, []
        if batch:
            asyncio.run(self._drop(batch))

    async def _drop(self, databases: list[str]) -> None:
        """Side by side: each DROP DATABASE waits for a checkpoint (about 0.6 s here), and
        drops that wait together share one."""
        room = asyncio.Semaphore(DROPS_AT_ONCE)

        async def drop(database: str) -> None:
            async with room:
                connection = await asyncpg.connect(self.server)
                try:
                    await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                finally:
                    await connection.close()

        await asyncio.gather(*(drop(database) for database in databases))

    def close(self) -> None:
        self._dropping.shutdown(wait=True)
        asyncio.run(self._drop(list(reversed(self.made))))
