"""Both executors over the same demo data: the fast path, and the standard executor (the same
schema inside `standard_only()`), with bodies compared as JSON text, key order included."""

import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from runql.fastpath.switch import standard_only
from runql.resolvers.context import Context
from runql.served_schema import schema_for
from runql.settings import Settings
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID

Body = dict[str, Any]


@dataclass
class Ran:
    body: Body  # data and errors, as a client gets them
    executor: str | None  # extensions.executor: "fast" or "standard"

    @property
    def text(self) -> str:
        return json.dumps(self.body)  # no sort_keys: the order of keys counts too


class BothExecutors:
    def __init__(
        self, database: Database, settings: Settings, org_id: str = DEFAULT_ORG_ID
    ) -> None:
        self.database = database
        self.settings = settings
        self.org_id = org_id
        self.schema = schema_for(settings)

    async def _run(
        self, query: str, variables: dict[str, Any] | None, operation_name: str | None
    ) -> Ran:
        context = Context.create(self.database, self.settings, self.org_id)
        result = await self.schema.execute(
            query, variable_values=variables, context_value=context, operation_name=operation_name
        )
        body: Body = {"data": result.data}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        return Ran(body, (result.extensions or {}).get("executor"))

    async def fast(
        self, query: str, variables: dict[str, Any] | None = None, operation_name: str | None = None
    ) -> Ran:
        return await self._run(query, variables, operation_name)

    async def standard(
        self, query: str, variables: dict[str, Any] | None = None, operation_name: str | None = None
    ) -> Ran:
        with standard_only():
            return await self._run(query, variables, operation_name)

    async def compare(
        self, query: str, variables: dict[str, Any] | None = None, operation_name: str | None = None
    ) -> Ran:
        """Both results, which must be the same text; the fast one is returned."""
        fast = await self.fast(query, variables, operation_name)
        standard = await self.standard(query, variables, operation_name)
        assert standard.executor in ("standard", None)  # None: refused before execution
        assert fast.text == standard.text, f"\nfast:     {fast.text}\nstandard: {standard.text}"
        return fast


@pytest.fixture
def both(demo_database: Database, settings: Settings) -> BothExecutors:
    return BothExecutors(demo_database, settings)


@dataclass(frozen=True)
class DemoIds:
    """Ids of each kind in the demo data, to ask for."""

    by_kind: dict[str, list[str]]


_TABLES = {
    "run": "runs",
    "agent": "agents",
    "thread": "threads",
    "mgrp": "message_groups",
    "msg": "messages",
    "act": "actors",
    "cnt": "message_contents",
    "part": "content_parts",
    "att": "attachments",
    "itm": "attached_items",
    "err": "run_errors",
}


@pytest.fixture
async def demo_ids(demo_database: Database) -> DemoIds:
    found: dict[str, list[str]] = {}
    async with demo_database.engine.connect() as connection:
        for kind, table in _TABLES.items():
            rows = await connection.execute(text(f"SELECT id FROM {table} ORDER BY id LIMIT 8"))
            found[kind] = [row[0] for row in rows]
    return DemoIds(found)
