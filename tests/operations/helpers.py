"""Reading what /metrics says, and talking to an app in-process (with its lifespan when the
test needs the executor's workers)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from runql.settings import Environment, Settings
from runql.storage.database import Database


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` whose labels include `labels`, or None."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and labels.items() <= found.labels.items():
                return float(found.value)
    return None


def count(text: str, name: str, **labels: str) -> float:
    """Like sample, 0 when there is none yet (a counter nobody has touched)."""
    return sample(text, name, **labels) or 0.0


@asynccontextmanager
async def client(app: Starlette, key: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://runql.test", headers=headers
    ) as http:
        yield http


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[Starlette]:
    """The app started as a server starts it (workers included) and stopped after."""
    async with app.router.lifespan_context(app):
        yield app


def settings_for(database: Database, **fields: Any) -> Settings:
    """Production settings naming `database`, as a server's would (its lifespan connects to
    what RUNQL_DATABASE_URL says, such as PostgreSQL's LISTEN connection)."""
    url = database.engine.url.render_as_string(hide_password=False)
    return Settings(
        **{
            "env": Environment.PRODUCTION,
            "workers": 0,
            "poll_seconds": 0.05,
            "shutdown_grace_seconds": 0.5,
            "database_url": url,
            **fields,
        }
    )
