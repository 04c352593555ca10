"""An agent reply that cannot be stored ends its run at once in ERROR (`invalid_reply`), with
a message saying what was wrong: a real webhook server on a loopback port answers it."""

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from runql.agents import catalog
from runql.agents.egress import EgressPolicy
from runql.agents.registry import AgentRegistry
from runql.agents.webhook import WebhookKind
from runql.enums import RunStatus
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.settings import LOOPBACK
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID, RunErrorRow
from runql.text import JsonCaps
from tests.agents.test_webhook import Hook, Scripted, hook
from tests.lifecycle.conftest import new_run, reload

LOOPBACK_REGISTRY = AgentRegistry([WebhookKind(EgressPolicy(LOOPBACK))])  # hooks on loopback

__all__ = ["hook"]

CONFIG = ExecutorConfig(
    concurrency=1,
    lease_seconds=30,
    poll_seconds=0.05,
    json_caps=JsonCaps(max_depth=4, max_bytes=1024),
)

BAD_REPLIES = [
    ({"text": "half a pair \ud800"}, "messages[0].parts[0].text", "lone surrogate (U+D800)"),
    ({"text": "nul \x00"}, "messages[0].parts[0].text", "NUL"),
    (
        {
            "messages": [{"parts": [{"type": "text", "text": "hi"}]}],
            "attached_items": [{"key": "k", "value": {"a\udc00": 1}}],
        },
        "attached_items[0].value",
        "lone surrogate (U+DC00)",
    ),
    (
        {
            "messages": [{"parts": [{"type": "text", "text": "hi"}]}],
            "attached_items": [{"key": "k", "value": [[[[["deep"]]]]]}],
        },
        "attached_items[0].value",
        "nested more than 4 levels",
    ),
    (
        {
            "messages": [{"parts": [{"type": "text", "text": "hi"}]}],
            "attached_items": [{"key": "k", "value": "x" * 2000}],
        },
        "attached_items[0].value",
        "the limit is 1024",
    ),
]


@pytest.mark.parametrize(("reply", "where", "what"), BAD_REPLIES)
async def test_an_unstorable_reply_ends_the_run_at_once(
    database: Database, hook: Hook, reply: Any, where: str, what: str
) -> None:
    agent = await catalog.create_agent(
        database,
        LOOPBACK_REGISTRY,
        DEFAULT_ORG_ID,
        name="Hook",
        kind="webhook",
        config={"url": hook.url, "retries": 0},
    )
    hook.reply(Scripted(json=reply))
    run = await new_run(database, agent)
    executor = Executor(database, LOOPBACK_REGISTRY, CONFIG)
    async with asyncio.timeout(5):  # its lease (30 s) is not what ends it
        assert await executor.run_once()
    await executor.agents.close()
    assert (await reload(database, run.id)).status == RunStatus.ERROR
    async with database.read() as session:
        [error] = (
            (await session.execute(select(RunErrorRow).where(col(RunErrorRow.run_id) == run.id)))
            .scalars()
            .all()
        )
    assert error.code == "invalid_reply"
    assert where in error.message
    assert what in error.message
    assert error.message.startswith("The agent's reply cannot be stored")
