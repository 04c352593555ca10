"""Benchmark of the dashboard feed (queries/feed.graphql at `first: 100`), executed in-process.

Four ways to produce the same JSON body over the same SQLite demo database:

- graphql:  the real schema as it serves queries: the fast path (runql.fastpath), which plans the
            operation once and fetches each level in one statement, serialized with orjson;
- standard: the same schema on graphql-core's executor (`standard_only()`), resolving field by
            field with the per-request, batching DataLoaders;
- naive:    the standard executor with loaders that do not batch (`batch_size=1`): one query
            per object;
- floor:    hand-written SQL, one `IN (...)` query per table, assembled into the very same dict
            and serialized with orjson: what a hand-tuned endpoint would cost.

Before timing, the standard and the floor's outputs are checked against the fast path's; they
must be equal. The last line printed is a JSON object with the medians in milliseconds (`ratio`
is graphql / floor, `standard_ratio` standard / floor):

    {"graphql_ms": ..., "floor_ms": ..., "ratio": ..., "naive_ms": ..., "statements": ...,
     "standard_ms": ..., "standard_ratio": ..., "standard_statements": ...,
     "naive_statements": ..., "runs": ...}

graphql, standard and floor are timed in interleaved rounds, `--repeat` times each. The naive
path costs about a second per execution, so it is timed min(--repeat, --naive-repeat) times
(default 10), which keeps the default run well under a minute on two cores.

Usage: python bench/feed.py [--runs 1000] [--repeat 30] [--warmup 3] [--naive-repeat 10]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import orjson
import strawberry
from sqlalchemy import Row, TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.scratch import scratch_database  # (runs as a script, too)
from runql.demo import load_demo
from runql.encoding import number
from runql.enums import (
    ActorType,
    AttachmentType,
    ContentPartType,
    MessageGroupStatus,
    MessageGroupType,
    MessageStatus,
    MessageType,
    RunStatus,
)
from runql.fastpath.switch import standard_only
from runql.resolvers.context import Context
from runql.resolvers.loaders import Loaders
from runql.served_schema import build_schema
from runql.settings import Environment, Settings
from runql.storage.database import Database, counting_statements
from runql.storage.migrate import upgrade
from runql.storage.pages import Cursor
from runql.storage.tables import DEFAULT_ORG_ID
from runql.storage.types import format_instant

ROOT = Path(__file__).resolve().parent.parent
FEED = ROOT / "queries" / "feed.graphql"
FIRST = 100
SEED = 7

JSONDict = dict[str, Any]
Timed = Callable[[], Awaitable[bytes]]


# --------------------------------------------------------------------------------------------
# The floor: hand-written batched SQL.
# --------------------------------------------------------------------------------------------


def _by_ids(sql: str) -> TextClause:
    """A statement with one expanding `IN :ids` parameter."""
    return text(sql).bindparams(bindparam("ids", expanding=True))


# The page and the count are the caller's organization's, as every answer of runql's is: the
# page then walks the (org_id, created_at, id) index instead of sorting every run (on SQLite,
# 7 ms of a sort at 5,000 runs).
RUNS_PAGE = text(
    "SELECT id, status, agent_id, trigger_message_group_id, message_group_id, cost_amount,"
    " cost_unit, created_at, started_at, completed_at"
    " FROM runs WHERE org_id = :org ORDER BY created_at DESC, id DESC LIMIT :limit"
)
RUNS_COUNT = text("SELECT count(*) FROM runs WHERE org_id = :org")
AGENTS = _by_ids("SELECT id, name, kind FROM agents WHERE id IN :ids")
GROUPS = _by_ids(
    "SELECT id, status, type, thread_id, parent_message_group_id, metadata, created_at"
    " FROM message_groups WHERE id IN :ids"
)
MESSAGES = _by_ids(
    "SELECT id, message_group_id, status, type, thread_id, actor_id, error_code, error_message,"
    " created_at FROM messages WHERE message_group_id IN :ids ORDER BY position, id"
)
ACTORS = _by_ids(
    "SELECT id, name, type, metadata, created_at, updated_at FROM actors WHERE id IN :ids"
)
CONTENTS = _by_ids("SELECT id, message_item_id FROM message_contents WHERE message_item_id IN :ids")
PARTS = _by_ids(
    "SELECT id, content_id, type, text FROM content_parts WHERE content_id IN :ids"
    " ORDER BY position, id"
)
ATTACHMENTS = _by_ids(
    "SELECT id, content_id, type, file_id, url, caption FROM attachments"
    " WHERE content_id IN :ids ORDER BY position, id"
)
ERRORS = _by_ids(
    "SELECT id, run_id, code, message, metadata, created_at FROM run_errors"
    " WHERE run_id IN :ids ORDER BY created_at, id"
)
ITEMS = _by_ids(
    "SELECT id, run_id, actor_id, key, value, created_at FROM attached_items"
    " WHERE run_id IN :ids ORDER BY created_at, id"
)


def _names(enum: type[Enum]) -> dict[str, str]:
    """Stored value -> GraphQL enum value (the member's name), e.g. "success" -> "SUCCESS"."""
    return {member.value: member.name for member in enum}


RUN_STATUS = _names(RunStatus)
GROUP_STATUS = _names(MessageGroupStatus)
GROUP_TYPE = _names(MessageGroupType)
MESSAGE_STATUS = _names(MessageStatus)
MESSAGE_TYPE = _names(MessageType)
ACTOR_TYPE = _names(ActorType)
PART_TYPE = _names(ContentPartType)
ATTACHMENT_TYPE = _names(AttachmentType)

# How SQLAlchemy stores a DateTime on SQLite: naive UTC, always with microseconds.
_STORED_LENGTH = len("2025-01-01 00:00:00.000000")


def _instant(stored: str | datetime) -> datetime:
    """A stored datetime as the aware UTC datetime the ORM would return."""
    parsed = stored if isinstance(stored, datetime) else datetime.fromisoformat(stored)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _stamp(stored: str | datetime | None) -> str | None:
    """A stored datetime as the DateTime scalar sends it: 2025-01-01T00:00:00.000Z."""
    if stored is None:
        return None
    if isinstance(stored, datetime):  # PostgreSQL's driver hands over datetimes
        return format_instant(stored)
    if len(stored) == _STORED_LENGTH and stored[10] == " " and stored[19] == ".":
        return f"{stored[:10]}T{stored[11:23]}Z"  # isoformat(timespec=ms) truncates, as this
    return format_instant(_instant(stored))


def _json(stored: Any) -> Any:
    return orjson.loads(stored) if isinstance(stored, str | bytes) else stored


async def _fetch(
    conn: AsyncConnection, statement: TextClause, ids: Iterable[str]
) -> Sequence[Row[Any]]:
    """Rows for the distinct ids, in one statement (none when there are no ids)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    return (await conn.execute(statement, {"ids": wanted})).all()


def _grouped(rows: Iterable[Row[Any]], key: int) -> defaultdict[str, list[Row[Any]]]:
    grouped: defaultdict[str, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        grouped[row[key]].append(row)
    return grouped


@dataclass
class _Actors:
    """Each actor in the three shapes the feed selects, built once and shared."""

    rows: dict[str, Row[Any]]
    full: dict[str, JSONDict] = field(default_factory=dict)
    brief: dict[str, JSONDict] = field(default_factory=dict)
    typed: dict[str, JSONDict] = field(default_factory=dict)

    def message_actor(self, actor_id: str | None) -> JSONDict | None:
        if actor_id is None or actor_id not in self.rows:
            return None
        found = self.full.get(actor_id)
        if found is None:
            row = self.rows[actor_id]
            found = self.full[actor_id] = {
                "id": row.id,
                "name": row.name,
                "type": ACTOR_TYPE[row.type],
                "metadata": _json(row.metadata),
                "createdAt": _stamp(row.created_at),
                "updatedAt": _stamp(row.updated_at),
            }
        return found

    def trigger_actor(self, actor_id: str | None) -> JSONDict | None:
        if actor_id is None or actor_id not in self.rows:
            return None
        found = self.brief.get(actor_id)
        if found is None:
            row = self.rows[actor_id]
            found = self.brief[actor_id] = {"id": row.id, "name": row.name}
        return found

    def item_actor(self, actor_id: str | None) -> JSONDict | None:
        if actor_id is None or actor_id not in self.rows:
            return None
        found = self.typed.get(actor_id)
        if found is None:
            row = self.rows[actor_id]
            found = self.typed[actor_id] = {
                "id": row.id,
                "name": row.name,
                "type": ACTOR_TYPE[row.type],
            }
        return found


async def floor_feed(conn: AsyncConnection, first: int, org: str = DEFAULT_ORG_ID) -> JSONDict:
    """The feed's `data` for the organization's runs, from one IN query per table on one
    connection."""
    runs = (await conn.execute(RUNS_PAGE, {"org": org, "limit": first + 1})).all()
    has_next_page = len(runs) > first
    runs = runs[:first]
    total = int((await conn.execute(RUNS_COUNT, {"org": org})).scalar_one())
    run_ids = [run.id for run in runs]

    agents = {row.id: row for row in await _fetch(conn, AGENTS, (r.agent_id for r in runs))}
    reply_ids = [r.message_group_id for r in runs if r.message_group_id is not None]
    trigger_ids = [r.trigger_message_group_id for r in runs]
    groups = {row.id: row for row in await _fetch(conn, GROUPS, [*reply_ids, *trigger_ids])}
    errors = _grouped(await _fetch(conn, ERRORS, run_ids), 1)
    items = _grouped(await _fetch(conn, ITEMS, run_ids), 1)
    messages = await _fetch(conn, MESSAGES, list(groups))
    by_group = _grouped(messages, 1)
    actor_ids = [m.actor_id for m in messages]
    actor_ids += [i.actor_id for rows in items.values() for i in rows if i.actor_id is not None]
    actors = _Actors({row.id: row for row in await _fetch(conn, ACTORS, actor_ids)})
    contents = {
        row.message_item_id: row for row in await _fetch(conn, CONTENTS, (m.id for m in messages))
    }
    parts = _grouped(await _fetch(conn, PARTS, (c.id for c in contents.values())), 1)
    # Attachments are selected only under `messageGroup`, the run's reply.
    reply_groups = set(reply_ids)
    with_attachments = [
        contents[m.id].id
        for m in messages
        if m.message_group_id in reply_groups and m.id in contents
    ]
    attachments = _grouped(await _fetch(conn, ATTACHMENTS, with_attachments), 1)

    def full_content(message_id: str) -> JSONDict | None:
        content = contents.get(message_id)
        if content is None:
            return None
        return {
            "id": content.id,
            "messageItemId": content.message_item_id,
            "parts": [
                {"id": p.id, "type": PART_TYPE[p.type], "text": p.text}
                for p in parts.get(content.id, ())
            ],
            "attachments": [
                {
                    "id": a.id,
                    "type": ATTACHMENT_TYPE[a.type],
                    "fileId": a.file_id,
                    "url": a.url,
                    "caption": a.caption,
                }
                for a in attachments.get(content.id, ())
            ],
        }

    def reply_group(group_id: str | None) -> JSONDict | None:
        group = groups.get(group_id) if group_id is not None else None
        if group is None:
            return None
        return {
            "id": group.id,
            "status": GROUP_STATUS[group.status],
            "type": GROUP_TYPE[group.type],
            "threadId": group.thread_id,
            "parentMessageGroupId": group.parent_message_group_id,
            "metadata": _json(group.metadata),
            "createdAt": _stamp(group.created_at),
            "messages": [
                {
                    "id": m.id,
                    "status": MESSAGE_STATUS[m.status],
                    "type": MESSAGE_TYPE[m.type],
                    "messageGroupId": m.message_group_id,
                    "threadId": m.thread_id,
                    "createdAt": _stamp(m.created_at),
                    "error": None
                    if m.error_code is None
                    else {"code": m.error_code, "message": m.error_message or ""},
                    "actor": actors.message_actor(m.actor_id),
                    "content": full_content(m.id),
                }
                for m in by_group.get(group.id, ())
            ],
        }

    def trigger_content(message_id: str) -> JSONDict | None:
        content = contents.get(message_id)
        if content is None:
            return None
        return {
            "id": content.id,
            "parts": [{"id": p.id, "text": p.text} for p in parts.get(content.id, ())],
        }

    def trigger_group(group_id: str) -> JSONDict | None:
        group = groups.get(group_id)
        if group is None:
            return None
        return {
            "id": group.id,
            "messages": [
                {
                    "id": m.id,
                    "actor": actors.trigger_actor(m.actor_id),
                    "content": trigger_content(m.id),
                }
                for m in by_group.get(group.id, ())
            ],
        }

    def agent(agent_id: str) -> JSONDict | None:
        row = agents.get(agent_id)
        return None if row is None else {"id": row.id, "name": row.name, "kind": row.kind}

    edges: list[JSONDict] = []
    for run in runs:
        edges.append(
            {
                "cursor": Cursor(_instant(run.created_at), run.id).encode(),
                "node": {
                    "id": run.id,
                    "status": RUN_STATUS[run.status],
                    "agentId": run.agent_id,
                    "triggerMessageGroupId": run.trigger_message_group_id,
                    "createdAt": _stamp(run.created_at),
                    "startedAt": _stamp(run.started_at),
                    "completedAt": _stamp(run.completed_at),
                    "cost": None
                    if run.cost_amount is None or run.cost_unit is None
                    else {"amount": number(run.cost_amount), "unit": run.cost_unit},
                    "agent": agent(run.agent_id),
                    "messageGroup": reply_group(run.message_group_id),
                    "triggerMessageGroup": trigger_group(run.trigger_message_group_id),
                    "errors": [
                        {
                            "id": e.id,
                            "runId": e.run_id,
                            "code": e.code,
                            "message": e.message,
                            "metadata": _json(e.metadata),
                            "createdAt": _stamp(e.created_at),
                        }
                        for e in errors.get(run.id, ())
                    ],
                    "attachedItems": [
                        {
                            "id": i.id,
                            "key": i.key,
                            "value": _json(i.value),
                            "createdAt": _stamp(i.created_at),
                            "actor": actors.item_actor(i.actor_id),
                        }
                        for i in items.get(run.id, ())
                    ],
                },
            }
        )
    return {
        "runs": {
            "totalCount": total,
            "pageInfo": {
                "hasNextPage": has_next_page,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
            "edges": edges,
        }
    }


# --------------------------------------------------------------------------------------------
# The three timed paths.
# --------------------------------------------------------------------------------------------


@dataclass
class Bench:
    database: Database
    settings: Settings
    document: str
    schema: strawberry.Schema = field(init=False)
    statements: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.schema = build_schema(development=True)

    async def _execute(self, context: Context, name: str, executor: str) -> bytes:
        result = await self.schema.execute(
            self.document, variable_values={"first": FIRST}, context_value=context
        )
        body = orjson.dumps({"data": result.data})
        if result.errors:
            raise RuntimeError(f"{name}: the feed query failed: {result.errors}")
        extensions = result.extensions or {}
        sql = extensions.get("sql")
        if sql is None:
            raise RuntimeError(
                f"{name}: no extensions.sql in the result (is SqlStatistics "
                "still enabled by build_schema(development=True)?)"
            )
        if extensions.get("executor") != executor:
            raise RuntimeError(
                f"{name}: ran on the {extensions.get('executor')} executor, not the {executor} one"
            )
        self.statements[name] = int(sql["statements"])
        return body

    async def graphql(self) -> bytes:
        return await self._execute(
            Context.create(self.database, self.settings, DEFAULT_ORG_ID), "graphql", "fast"
        )

    async def standard(self) -> bytes:
        with standard_only():
            return await self._execute(
                Context.create(self.database, self.settings, DEFAULT_ORG_ID), "standard", "standard"
            )

    async def naive(self) -> bytes:
        context = Context(
            database=self.database,
            settings=self.settings,
            org_id=DEFAULT_ORG_ID,
            loaders=Loaders(self.database, DEFAULT_ORG_ID, batch_size=1),
        )
        with standard_only():
            return await self._execute(context, "naive", "standard")

    async def floor(self) -> bytes:
        async with counting_statements() as count, self.database.engine.connect() as conn:
            body = orjson.dumps({"data": await floor_feed(conn, FIRST)})
        self.statements["floor"] = count.statements
        return body


def first_difference(left: Any, right: Any, path: str = "data") -> str | None:
    """Where two decoded JSON values first differ, for a readable failure."""
    if type(left) is not type(right):
        return f"{path}: {left!r} != {right!r}"
    if isinstance(left, dict):
        if left.keys() != right.keys():
            return f"{path}: keys {sorted(left)} != {sorted(right)}"
        for key in left:
            found = first_difference(left[key], right[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(left, list):
        if len(left) != len(right):
            return f"{path}: {len(left)} items != {len(right)} items"
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if left == right else f"{path}: {left!r} != {right!r}"


async def timed(path: Timed) -> float:
    gc.collect()
    started = time.perf_counter()
    await path()
    return (time.perf_counter() - started) * 1000


async def measure(paths: dict[str, Timed], repeat: int, warmup: int) -> dict[str, list[float]]:
    """Warm the paths up, then time them in interleaved rounds (drift hits all alike)."""
    for _ in range(warmup):
        for path in paths.values():
            await path()
    # Long-lived objects (schema, mappers, engine) leave the collector's view, so that the
    # collection before each sample is cheap; collections during a sample still happen.
    gc.collect()
    gc.freeze()
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeat):
        for name, path in paths.items():
            samples[name].append(await timed(path))
    return samples


async def prepare(url: str, runs: int) -> Database:
    upgrade(url)
    database = Database.from_url(url)
    await load_demo(database, runs=runs, seed=SEED)
    return database


async def run(args: argparse.Namespace, url: str | None = None) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="runql-bench-"))
    try:
        started = time.perf_counter()
        database = await prepare(url or f"sqlite+aiosqlite:///{workdir / 'runql.db'}", args.runs)
        setup_s = time.perf_counter() - started
        try:
            bench = Bench(database, Settings(env=Environment.DEVELOPMENT), FEED.read_text())
            graphql_body, floor_body = await bench.graphql(), await bench.floor()
            graphql_data, floor_data = orjson.loads(graphql_body), orjson.loads(floor_body)
            if graphql_data != floor_data:
                where = first_difference(graphql_data, floor_data, "body")
                sys.exit(
                    f"feed.py: the floor's output differs from the GraphQL output, so the "
                    f"comparison would be meaningless. First difference: {where}"
                )
            standard_body = await bench.standard()
            if standard_body != graphql_body:
                where = first_difference(graphql_data, orjson.loads(standard_body), "body")
                sys.exit(
                    f"feed.py: the fast path's output differs from the standard executor's."
                    f" First difference: {where}"
                )
            identical = graphql_body == floor_body
            samples = await measure(
                {"graphql": bench.graphql, "standard": bench.standard, "floor": bench.floor},
                args.repeat,
                args.warmup,
            )
            naive_repeat = min(args.repeat, args.naive_repeat)
            if naive_repeat:
                samples.update(
                    await measure({"naive": bench.naive}, naive_repeat, min(args.warmup, 1))
                )
        finally:
            await database.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(
        f"feed.graphql, first: {FIRST}, over {args.runs} demo runs (setup {setup_s:.1f}s); "
        f"body {len(graphql_body):,} bytes; floor output "
        f"{'byte-identical to' if identical else 'equal (decoded) to'} the GraphQL output"
    )
    print(
        f"{'path':<9} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'samples':>8} "
        f"{'SQL stmts':>10} {'x floor':>8}"
    )
    for name, values in samples.items():
        print(
            f"{name:<9} {medians[name]:>10.2f} {min(values):>8.2f} {max(values):>8.2f} "
            f"{len(values):>8} {bench.statements[name]:>10} "
            f"{medians[name] / medians['floor']:>8.2f}"
        )

    report: dict[str, Any] = {
        "graphql_ms": round(medians["graphql"], 2),
        "floor_ms": round(medians["floor"], 2),
        "ratio": round(medians["graphql"] / medians["floor"], 2),
        "naive_ms": round(medians["naive"], 2) if "naive" in medians else None,
        "statements": bench.statements["graphql"],
        "standard_ms": round(medians["standard"], 2),
        "standard_ratio": round(medians["standard"] / medians["floor"], 2),
        "standard_statements": bench.statements["standard"],
    }
    if "naive" in medians:
        report["naive_statements"] = bench.statements["naive"]
    report["runs"] = args.runs
    return report


def _at_least(minimum: int) -> Callable[[str], int]:
    def check(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
        return number

    return check


positive = _at_least(1)
non_negative = _at_least(0)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--runs", type=positive, default=1000, help="demo runs to load (default 1000)"
    )
    parser.add_argument(
        "--repeat", type=positive, default=30, help="timed executions of each path (default 30)"
    )
    parser.add_argument(
        "--warmup",
        type=non_negative,
        default=3,
        help="untimed executions of graphql, standard and floor first (default 3; "
        "naive gets at most 1)",
    )
    parser.add_argument(
        "--naive-repeat",
        type=non_negative,
        default=10,
        help="cap on the naive path's timed executions, ~1 s each at the "
        "default size (default 10; 0 skips it)",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="a PostgreSQL server to run on (a new database is made and "
        "dropped), e.g. postgresql://postgres@127.0.0.1:5432/test",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.postgres is None:
        report = asyncio.run(run(args))
    else:
        with (
            tempfile.TemporaryDirectory() as folder,
            scratch_database(args.postgres, folder) as url,
        ):
            report = asyncio.run(run(args, url))
        report["database"] = "postgresql"
    print(orjson.dumps(report).decode())


if __name__ == "__main__":
    main()
