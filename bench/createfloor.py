"""The floor of bench/create.py: createRun's rows written through the raw driver (sqlite3 or
asyncpg) behind a minimal ASGI app on uvicorn, to set runql's createRun beside what the writes
themselves cost.

For each POST it reads the body (the bench's createRun document, with `agent` and `text`
variables), checks the bearer key against the one it was given (in memory), and waits for its
run to be committed. Requests that arrive together are written in one transaction, as runql
groups them (all that wait, 64 at most; one batch at a time on SQLite, on a thread, two on
PostgreSQL): one read of the agents, then the same rows as runql's (thread, message group,
message, content, part, run, its first event; the API actor when the organization has none)
one executemany a table, a pg_notify a batch on PostgreSQL. The answer is runql's:
`{"data": {"createRun": {"run": {"id": ..., "status": "PENDING"}}}}`.

Usage: python bench/createfloor.py --database-url URL --key SECRET --port P
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import uvicorn

MAX_BATCH = 64
API_ACTOR = "API user"
PENDING = orjson.dumps({"status": "PENDING"}).decode()
TICK = timedelta(microseconds=1)
Row = tuple[Any, ...]


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


INSERTS = {  # table: its columns, in the order the rows below give them
    "actors": ("id", "org_id", "name", "type", "metadata", "created_at", "updated_at"),
    "threads": ("id", "org_id", "agent_id", "metadata", "created_at", "updated_at"),
    "message_groups": (
        "id",
        "org_id",
        "thread_id",
        "parent_message_group_id",
        "status",
        "type",
        "metadata",
        "created_at",
    ),
    "messages": (
        "id",
        "org_id",
        "message_group_id",
        "thread_id",
        "actor_id",
        "position",
        "status",
        "type",
        "created_at",
    ),
    "message_contents": ("id", "org_id", "message_item_id"),
    "content_parts": ("id", "org_id", "content_id", "position", "type", "text"),
    "runs": (
        "id",
        "org_id",
        "agent_id",
        "thread_id",
        "trigger_message_group_id",
        "status",
        "metadata",
        "created_at",
        "last_event_seq",
    ),
    "run_events": ("run_id", "seq", "type", "payload", "created_at"),
}


def _sql(table: str, postgres: bool) -> str:
    columns = INSERTS[table]
    marks = ", ".join(f"${n + 1}" if postgres else "?" for n in range(len(columns)))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


class Batch:
    """The rows of one batch, by table, as the driver takes them."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self.rows: dict[str, list[Row]] = {table: [] for table in INSERTS}
        self.last = datetime.now(UTC) - TICK

    def _stamp(self) -> Any:
        now = datetime.now(UTC)
        self.last = now if now > self.last else self.last + TICK
        # SQLite: the text SQLAlchemy stores (UTC, no zone)
        return self.last if self.postgres else self.last.replace(tzinfo=None).isoformat(" ")

    def actor(self, org: str) -> str:
        actor = _id("act")
        now = self._stamp()
        self.rows["actors"].append((actor, org, API_ACTOR, "user", '{"source": "api"}', now, now))
        return actor

    def add(self, org: str, agent: str, actor: str, text: str) -> str:
        now = self._stamp()
        thread, group, message, content = _id("thread"), _id("mgrp"), _id("msg"), _id("cnt")
        run = _id("run")
        rows = self.rows
        rows["threads"].append((thread, org, agent, "{}", now, now))
        rows["message_groups"].append(
            (group, org, thread, None, "completed", "user_message", "{}", now)
        )
        rows["messages"].append((message, org, group, thread, actor, 0, "active", "content", now))
        rows["message_contents"].append((content, org, message))
        rows["content_parts"].append((_id("part"), org, content, 0, "text", text))
        rows["runs"].append((run, org, agent, thread, group, "pending", "{}", now, 1))
        rows["run_events"].append((run, 1, "status_changed", PENDING, now))
        return run


class Writer:
    """Group commit on the raw driver: one transaction a batch."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith("postgresql")
        self.lanes = 2 if self.postgres else 1
        self.pending: list[tuple[str, str, asyncio.Future[str]]] = []
        self.running = 0
        self.actors: dict[str, str] = {}
        self.sqlite: sqlite3.Connection | None = None
        self.pool: Any = None
        self.sql = {table: _sql(table, self.postgres) for table in INSERTS}

    async def open(self) -> None:
        if self.postgres:
            dsn = self.url.replace("postgresql+asyncpg://", "postgresql://", 1)
            self.pool = await asyncpg.create_pool(dsn, min_size=self.lanes, max_size=self.lanes)
        else:
            path = self.url.split("///", 1)[1]
            self.sqlite = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "busy_timeout=10000", "synchronous=NORMAL"):
                self.sqlite.execute(f"PRAGMA {pragma}")
            self.sqlite.execute("PRAGMA foreign_keys=ON")

    async def submit(self, agent: str, text: str) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending.append((agent, text, future))
        if self.running < self.lanes:
            self.running += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
                try:
                    runs = await (self._postgres(batch) if self.postgres else self._sqlite(batch))
                except Exception as error:
                    for _agent, _text, future in batch:
                        future.set_exception(error)
                    continue
                for (_agent, _text, future), run in zip(batch, runs, strict=True):
                    future.set_result(run)
        finally:
            self.running -= 1

    def _rows(self, batch: Sequence[tuple[str, str, Any]], orgs: dict[str, str]) -> Batch:
        rows = Batch(self.postgres)
        runs = []
        for agent, text, _future in batch:
            org = orgs[agent]
            actor = self.actors.get(org) or rows.actor(org)
            self.actors[org] = actor
            runs.append(rows.add(org, agent, actor, text))
        rows.runs = runs  # type: ignore[attr-defined]
        return rows

    async def _sqlite(self, batch: Sequence[tuple[str, str, Any]]) -> list[str]:
        """The batch's transaction on a thread (one hand-off a batch): a commit that
        checkpoints the WAL must not stall the loop."""
        return await asyncio.to_thread(self._sqlite_batch, batch)

    def _sqlite_batch(self, batch: Sequence[tuple[str, str, Any]]) -> list[str]:
        connection = self.sqlite
        assert connection is not None
        agents = sorted({agent for agent, _text, _future in batch})
        connection.execute("BEGIN IMMEDIATE")
        try:
            found = connection.execute(
                f"SELECT id, org_id FROM agents WHERE id IN ({', '.join('?' * len(agents))})",
                agents,
            ).fetchall()
            self._find_actors(connection.execute, {org for _id_, org in found})
            rows = self._rows(batch, dict(found))
            for table, values in rows.rows.items():
                if values:
                    connection.executemany(self.sql[table], values)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return rows.runs  # type: ignore[attr-defined,no-any-return]

    def _find_actors(self, execute: Any, orgs: set[str]) -> None:
        for org in orgs - set(self.actors):
            row = execute(
                "SELECT id FROM actors WHERE org_id = ? AND type = 'user' AND name = ?",
                (org, API_ACTOR),
            ).fetchone()
            if row is not None:
                self.actors[org] = row[0]

    async def _postgres(self, batch: Sequence[tuple[str, str, Any]]) -> list[str]:
        agents = sorted({agent for agent, _text, _future in batch})
        async with self.pool.acquire() as connection, connection.transaction():
            found = await connection.fetch(
                "SELECT id, org_id FROM agents WHERE id = ANY($1)", agents
            )
            for org in {row[1] for row in found} - set(self.actors):
                actor = await connection.fetchval(
                    "SELECT id FROM actors WHERE org_id = $1 AND type = 'user' AND name = $2",
                    org,
                    API_ACTOR,
                )
                if actor is not None:
                    self.actors[org] = actor
            rows = self._rows(batch, {row[0]: row[1] for row in found})
            for table, values in rows.rows.items():
                if values:
                    await connection.executemany(self.sql[table], values)
            await connection.execute(
                "SELECT pg_notify('runql_events', m) FROM unnest($1::text[]) AS m",
                [f"floor|{run}|1|pending" for run in rows.runs],  # type: ignore[attr-defined]
            )
        return rows.runs  # type: ignore[attr-defined,no-any-return]


class Floor:
    def __init__(self, url: str, key: str) -> None:
        self.authorization = f"Bearer {key}".encode()
        self.writer = Writer(url)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await self.writer.open()
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if (b"authorization", self.authorization) not in scope["headers"]:
            await _answer(send, 401, b'{"errors": [{"message": "unauthorized"}]}')
            return
        variables = orjson.loads(body)["variables"]
        run = await self.writer.submit(variables["agent"], variables["text"])
        answer = {"data": {"createRun": {"run": {"id": run, "status": "PENDING"}}}}
        await _answer(send, 200, orjson.dumps(answer))


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        Floor(args.database_url, args.key),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
