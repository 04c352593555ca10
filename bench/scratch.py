"""A throwaway database for a benchmark: a SQLite file, or a new PostgreSQL database."""

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg


async def _admin(server: str, statement: str) -> None:
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def scratch_database(postgres_server: str | None, folder: str) -> Iterator[str]:
    """The URL of an empty database, dropped afterwards (PostgreSQL) or left in `folder`."""
    if postgres_server is None:
        yield f"sqlite+aiosqlite:///{folder}/bench.db"
        return
    name = f"runql_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(postgres_server, f'CREATE DATABASE "{name}"'))
    base = postgres_server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
