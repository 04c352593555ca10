"""Strings stored before runql refused them (a lone surrogate in a JSON column, as SQLite kept
them) do not make any read fail: responses fall back to escaped JSON."""

import asyncio
import json

import httpx
import pytest
from sqlalchemy import text

from runql.storage.database import Database
from tests.subscriptions.conftest import Live
from tests.text.reads import read_everything

STORED = '{"k\\ud800": "v\\udfff", "ok": "é"}'  # JSON text as the column type writes it


@pytest.fixture
def sqlite_only(database: Database) -> None:
    if database.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL never held a lone surrogate: its text and JSONB refuse them")


async def _status(live: Live, run_id: str) -> str:
    data = await live.gql("query($id: ID!) { run(id: $id) { status } }", {"id": run_id})
    return str(data["run"]["status"])


async def _settled(live: Live, run_id: str) -> None:
    async with asyncio.timeout(20):
        while await _status(live, run_id) != "SUCCESS":  # noqa: ASYNC110 (a client polls)
            await asyncio.sleep(0.05)


@pytest.mark.usefixtures("sqlite_only")
async def test_every_read_path_survives_a_stored_lone_surrogate(live: Live) -> None:
    run_id = await live.create_run("before the fix")
    await _settled(live, run_id)
    async with live.database.write() as session:
        await session.execute(
            text("UPDATE runs SET metadata = :m, raw_inputs = :m WHERE id = :id"),
            {"m": STORED, "id": run_id},
        )
        await session.execute(text("UPDATE threads SET metadata = :m"), {"m": STORED})
    base = live.http_url.removesuffix("/graphql")
    answers = await read_everything(base, live.ws_url, live.key)
    assert answers.problems == []
    assert all(status == 200 for status in answers.statuses)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {live.key}"}
    ) as client:
        response = await client.get(f"/runs/{run_id}")
    assert response.headers["content-type"] == "application/json"
    assert "\\ud800" in response.text  # escaped: still valid JSON, nothing lost
    assert json.loads(response.text)["metadata"] == {"k\ud800": "v\udfff", "ok": "é"}
