"""The floor server of bench/serve.py: the least a server can do to answer runql's reads.

A raw ASGI app on the same server software as the runql it is compared with (`--server`:
uvicorn with its default loop and HTTP parser, as `runql serve` (whose protocol adds the
wire, runql/protocol.py, in front of the ASGI app); or granian, started by
`granian_command`, as bench/serve.py starts runql on it): it reads the body, checks the bearer
token against an in-memory key table, fetches the same rows through the raw driver (asyncpg
with its prepared-statement cache, or sqlite3) and answers the same JSON bytes with orjson. It
knows four documents, matched by their exact text (see `ROUTES`); anything else is a 400.

The feed is bench/feed.py's hand-written `floor_feed`, run over `RawConnection`, which turns
its SQLAlchemy `text()` statements into the driver's own SQL once per shape.

Usage (bench/serve.py starts it): python bench/floorserve.py --database-url URL --key SECRET
       --org ORG_ID --port PORT [--server uvicorn|granian]
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
from collections import namedtuple
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import TextClause, bindparam, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.feed import (  # (runs as a script, too)
    ACTOR_TYPE,
    ATTACHMENT_TYPE,
    GROUP_STATUS,
    GROUP_TYPE,
    MESSAGE_STATUS,
    MESSAGE_TYPE,
    PART_TYPE,
    RUN_STATUS,
    JSONDict,
    _json,
    _stamp,
    floor_feed,
)
from runql.encoding import number

ROOT = Path(__file__).resolve().parent.parent
RUN_BY_ID = "query($id: ID!) { run(id: $id) { id status } }"
FEED = (ROOT / "queries" / "feed.graphql").read_text()
RUN_DETAIL = (ROOT / "queries" / "run-detail.graphql").read_text()
_PARAMETER = re.compile(r"IN :(\w+)|:(\w+)")
SERVERS = ("uvicorn", "granian")  # the ASGI servers both of bench/serve.py's servers run on
ENVIRONMENT = "BENCH_FLOOR"  # the floor's arguments, as JSON, for `from_environment`


class _Result:
    """The two ways floor_feed reads a statement's rows."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def all(self) -> list[Any]:
        return self._rows

    def scalar_one(self) -> Any:
        return self._rows[0][0]


class RawConnection:
    """SQLAlchemy `text()` statements on a raw driver connection, rows as named tuples. The
    driver's SQL of each statement shape and the row types are made once per process."""

    _shapes: dict[tuple[str, tuple[int, ...]], tuple[str, list[str]]] = {}
    _rows: dict[tuple[str, ...], Any] = {}

    def __init__(self, connection: Any, postgresql: bool) -> None:
        self._connection = connection
        self._postgresql = postgresql

    def _sql(self, clause: TextClause, params: dict[str, Any]) -> tuple[str, list[Any]]:
        sizes = tuple(len(value) for value in params.values() if isinstance(value, list))
        shape = self._shapes.get((clause.text, sizes))
        if shape is None:
            shape = self._shapes[clause.text, sizes] = self._translate(clause.text, params)
        sql, names = shape
        values: list[Any] = []
        for name in names:
            value = params[name]
            values.extend(value if isinstance(value, list) and not self._postgresql else [value])
        return sql, values

    def _translate(self, sql: str, params: dict[str, Any]) -> tuple[str, list[str]]:
        names: list[str] = []

        def placeholder(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            names.append(name)
            if self._postgresql:
                return f"= ANY(${len(names)})" if match.group(1) else f"${len(names)}"
            if match.group(1):
                return "IN (" + ",".join("?" * len(params[name])) + ")"
            return "?"

        return _PARAMETER.sub(placeholder, sql), names

    def _row_type(self, columns: tuple[str, ...]) -> Any:
        found = self._rows.get(columns)
        if found is None:
            found = self._rows[columns] = namedtuple("Row", columns, rename=True)
        return found

    async def execute(self, clause: TextClause, params: dict[str, Any] | None = None) -> _Result:
        sql, values = self._sql(clause, params or {})
        if self._postgresql:
            records = await self._connection.fetch(sql, *values)
            if not records:
                return _Result([])
            row = self._row_type(tuple(records[0].keys()))
            return _Result([row(*record.values()) for record in records])
        cursor = self._connection.execute(sql, values)
        row = self._row_type(tuple(column[0] for column in cursor.description))
        return _Result([row(*values) for values in cursor.fetchall()])


# --------------------------------------------------------------------------------------------
# The documents.
# --------------------------------------------------------------------------------------------

RUN_STATUS_BY_ID = text("SELECT id, status FROM runs WHERE id = :id AND org_id = :org")
RUN = text(
    "SELECT id, status, agent_id, thread_id, trigger_message_group_id, message_group_id,"
    " cost_amount, cost_unit, language, country, timezone, metadata, raw_inputs, created_at,"
    " started_at, completed_at FROM runs WHERE id = :id AND org_id = :org"
)
AGENT = text("SELECT id, name, kind FROM agents WHERE id = :id")
THREAD = text("SELECT id, metadata FROM threads WHERE id = :id")
GROUPS = text(
    "SELECT id, status, type, parent_message_group_id, metadata, created_at"
    " FROM message_groups WHERE id IN :ids"
).bindparams(bindparam("ids", expanding=True))
MESSAGES = text(
    "SELECT m.id, m.message_group_id, m.status, m.type, m.error_code, m.error_message,"
    " m.created_at, a.id AS actor_id, a.name AS actor_name, a.type AS actor_type,"
    " c.id AS content_id FROM messages m LEFT JOIN actors a ON a.id = m.actor_id"
    " LEFT JOIN message_contents c ON c.message_item_id = m.id"
    " WHERE m.message_group_id IN :ids ORDER BY m.position, m.id",
).bindparams(bindparam("ids", expanding=True))
PARTS = text(
    "SELECT id, content_id, type, text FROM content_parts WHERE content_id IN :ids"
    " ORDER BY position, id"
).bindparams(bindparam("ids", expanding=True))
ATTACHMENTS = text(
    "SELECT id, content_id, type, file_id, url, caption FROM attachments"
    " WHERE content_id IN :ids ORDER BY position, id"
).bindparams(bindparam("ids", expanding=True))
ERRORS = text(
    "SELECT id, code, message, metadata, created_at FROM run_errors"
    " WHERE run_id = :id ORDER BY created_at, id"
)
ITEMS = text(
    "SELECT i.id, i.run_id, i.message_group_id, i.key, i.value, i.created_at,"
    " a.id AS actor_id, a.name AS actor_name, a.type AS actor_type FROM attached_items i"
    " LEFT JOIN actors a ON a.id = i.actor_id"
    " WHERE i.run_id = :id OR i.message_group_id = :group ORDER BY i.created_at, i.id"
)


def _grouped(rows: list[Any], key: str) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(getattr(row, key), []).append(row)
    return grouped


async def run_status(conn: RawConnection, org: str, variables: JSONDict) -> JSONDict:
    rows = (await conn.execute(RUN_STATUS_BY_ID, {"id": variables["id"], "org": org})).all()
    return {"run": {"id": rows[0].id, "status": RUN_STATUS[rows[0].status]} if rows else None}


async def run_detail(conn: RawConnection, org: str, variables: JSONDict) -> JSONDict:
    """queries/run-detail.graphql's `data`: the run, then one statement per level."""
    found = (await conn.execute(RUN, {"id": variables["id"], "org": org})).all()
    if not found:
        return {"run": None}
    run = found[0]
    agent = (await conn.execute(AGENT, {"id": run.agent_id})).all()
    thread = (await conn.execute(THREAD, {"id": run.thread_id})).all()
    group_ids = [run.trigger_message_group_id, *filter(None, [run.message_group_id])]
    groups = {row.id: row for row in (await conn.execute(GROUPS, {"ids": group_ids})).all()}
    messages = (await conn.execute(MESSAGES, {"ids": list(groups)})).all()
    content_ids = [m.content_id for m in messages if m.content_id is not None]
    parts = _grouped(
        (await conn.execute(PARTS, {"ids": content_ids})).all() if content_ids else [], "content_id"
    )
    attachments = _grouped(
        (await conn.execute(ATTACHMENTS, {"ids": content_ids})).all() if content_ids else [],
        "content_id",
    )
    errors = (await conn.execute(ERRORS, {"id": run.id})).all()
    items = (await conn.execute(ITEMS, {"id": run.id, "group": run.message_group_id})).all()
    by_group = _grouped(messages, "message_group_id")

    def content(message: Any) -> JSONDict | None:
        if message.content_id is None:
            return None
        return {
            "id": message.content_id,
            "parts": [
                {"id": p.id, "type": PART_TYPE[p.type], "text": p.text}
                for p in parts.get(message.content_id, ())
            ],
            "attachments": [
                {
                    "id": a.id,
                    "type": ATTACHMENT_TYPE[a.type],
                    "fileId": a.file_id,
                    "url": a.url,
                    "caption": a.caption,
                }
                for a in attachments.get(message.content_id, ())
            ],
        }

    def turn(group_id: str | None) -> JSONDict | None:
        group = groups.get(group_id) if group_id is not None else None
        if group is None:
            return None
        return {
            "id": group.id,
            "status": GROUP_STATUS[group.status],
            "type": GROUP_TYPE[group.type],
            "createdAt": _stamp(group.created_at),
            "parentMessageGroupId": group.parent_message_group_id,
            "metadata": _json(group.metadata),
            "messages": [
                {
                    "id": m.id,
                    "status": MESSAGE_STATUS[m.status],
                    "type": MESSAGE_TYPE[m.type],
                    "createdAt": _stamp(m.created_at),
                    "error": None
                    if m.error_code is None
                    else {"code": m.error_code, "message": m.error_message or ""},
                    "actor": None
                    if m.actor_id is None
                    else {"id": m.actor_id, "name": m.actor_name, "type": ACTOR_TYPE[m.actor_type]},
                    "content": content(m),
                }
                for m in by_group.get(group.id, ())
            ],
        }

    reply = turn(run.message_group_id)
    if reply is not None:
        reply["attachedItems"] = [
            {"id": i.id, "key": i.key, "value": _json(i.value)}
            for i in items
            if i.message_group_id == run.message_group_id
        ]
    return {
        "run": {
            "id": run.id,
            "status": RUN_STATUS[run.status],
            "createdAt": _stamp(run.created_at),
            "startedAt": _stamp(run.started_at),
            "completedAt": _stamp(run.completed_at),
            "language": run.language,
            "country": run.country,
            "timezone": run.timezone,
            "metadata": _json(run.metadata),
            "rawInputs": _json(run.raw_inputs),
            "cost": None
            if run.cost_amount is None or run.cost_unit is None
            else {"amount": number(run.cost_amount), "unit": run.cost_unit},
            "agent": {"id": agent[0].id, "name": agent[0].name, "kind": agent[0].kind}
            if agent
            else None,
            "thread": {"id": thread[0].id, "metadata": _json(thread[0].metadata)}
            if thread
            else None,
            "triggerMessageGroup": turn(run.trigger_message_group_id),
            "messageGroup": reply,
            "errors": [
                {
                    "id": e.id,
                    "code": e.code,
                    "message": e.message,
                    "metadata": _json(e.metadata),
                    "createdAt": _stamp(e.created_at),
                }
                for e in errors
            ],
            "attachedItems": [
                {
                    "id": i.id,
                    "key": i.key,
                    "value": _json(i.value),
                    "createdAt": _stamp(i.created_at),
                    "actor": None
                    if i.actor_id is None
                    else {"id": i.actor_id, "name": i.actor_name, "type": ACTOR_TYPE[i.actor_type]},
                }
                for i in items
                if i.run_id == run.id
            ],
        }
    }


async def feed(conn: RawConnection, org: str, variables: JSONDict) -> JSONDict:
    return await floor_feed(conn, int(variables["first"]), org)  # type: ignore[arg-type]


Handler = Callable[[RawConnection, str, JSONDict], Awaitable[JSONDict]]
ROUTES: dict[str, Handler] = {RUN_BY_ID: run_status, FEED: feed, RUN_DETAIL: run_detail}


# --------------------------------------------------------------------------------------------
# The ASGI app.
# --------------------------------------------------------------------------------------------

JSON_HEADERS = [(b"content-type", b"application/json")]


class Floor:
    def __init__(self, database_url: str, keys: dict[str, str]) -> None:
        self.database_url = database_url
        self.keys = {f"Bearer {secret}".encode(): org for secret, org in keys.items()}
        self.pool: Any = None
        self.sqlite: RawConnection | None = None

    async def _startup(self) -> None:
        if self.database_url.startswith("postgresql"):
            import asyncpg

            dsn = self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
            self.pool = await asyncpg.create_pool(dsn, min_size=4, max_size=4)
        else:
            path = self.database_url.split(":///", 1)[1]
            self.sqlite = RawConnection(sqlite3.connect(path, check_same_thread=False), False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, answer = await self._answer(scope, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(answer)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _answer(self, scope: dict[str, Any], body: bytes) -> tuple[int, bytes]:
        org = next(
            (self.keys.get(value) for name, value in scope["headers"] if name == b"authorization"),
            None,
        )
        if org is None:
            return 401, b'{"errors":[{"message":"unauthenticated"}]}'
        request = orjson.loads(body) if body else {}
        handler = ROUTES.get(request.get("query", "")) if isinstance(request, dict) else None
        if handler is None:
            return 400, b'{"errors":[{"message":"the floor does not know this document"}]}'
        variables = request.get("variables") or {}
        if self.sqlite is not None:
            data = await handler(self.sqlite, org, variables)
        else:
            async with self.pool.acquire() as connection:
                data = await handler(RawConnection(connection, True), org, variables)
        return 200, orjson.dumps({"data": data})


def from_environment() -> Floor:
    """The floor of a granian worker process (granian imports its app by name)."""
    arguments = orjson.loads(os.environ[ENVIRONMENT])
    return Floor(arguments["database_url"], {arguments["key"]: arguments["org"]})


def granian_command(target: str, port: int, *options: str, workers: int = 1) -> list[str]:
    """granian serving the ASGI app that the factory `target` ("module:function") makes: the
    same options for runql and the floor. Its event loop is uvloop, as uvicorn's is; it speaks
    HTTP/1.1 only (`--http 1`), as uvicorn does and as the load generator asks. Granian runs
    its `workers` as child processes of the one started, each with its Rust runtime threads:
    their CPU counts with the parent's (bench/serve.py sums the process tree)."""
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--factory",
        "--working-dir",
        str(ROOT),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *options,
        target,
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--key", required=True, help="the bearer secret it accepts")
    parser.add_argument("--org", required=True, help="the key's organization id")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="uvicorn",
        help="the ASGI server it runs on (default uvicorn)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.server == "granian":  # this process becomes granian's (same pid, same core)
        arguments = {"database_url": args.database_url, "key": args.key, "org": args.org}
        command = granian_command(
            "bench.floorserve:from_environment", args.port, "--log-level", "warning"
        )
        os.execve(
            sys.executable, command, {**os.environ, ENVIRONMENT: orjson.dumps(arguments).decode()}
        )
    import uvicorn

    uvicorn.run(
        Floor(args.database_url, {args.key: args.org}),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
