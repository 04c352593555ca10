"""The PostgreSQL listener: other processes' announcements reach the hub; this process's own
(which its commits gave the hub already) are dropped before they are parsed."""

import logging

import asyncpg
import pytest

from runql.bus.feeders import PostgresListener
from runql.bus.hub import Hub, Notice, run_channel
from runql.enums import RunEventType
from runql.storage.database import Database
from runql.storage.events import NOTIFY_CHANNEL, PROCESS, RunEvent
from runql.storage.tables import DEFAULT_ORG_ID
from runql.storage.types import utcnow


async def test_only_other_processes_announcements_reach_the_hub(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    if database.is_sqlite:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    url = database.engine.url.render_as_string(hide_password=False)
    hub = Hub()
    listener = PostgresListener(hub, url)
    event = RunEvent(DEFAULT_ORG_ID, "run_1", 1, RunEventType.MESSAGE_DELTA, {"t": "a"}, utcnow())
    own = event.announcement()
    assert own.startswith(f"{PROCESS}|")
    other = own.replace(PROCESS, "0" * len(PROCESS), 1).replace("|1|", "|2|", 1)
    notifier = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    await listener.start()
    try:
        async with hub.subscribe([run_channel("run_1")]) as heard:
            with caplog.at_level(logging.WARNING, logger="runql.bus"):
                for payload in (own, f"{PROCESS}|not|an|announcement", other):
                    await notifier.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload)
                notice = await heard.next(within=5)
                assert await heard.next(within=0.2) is None
    finally:
        await listener.stop()
        await notifier.close()
    assert notice == Notice(DEFAULT_ORG_ID, "run_1", 2, None)
    assert notice is not None
    assert notice.event == RunEvent(
        DEFAULT_ORG_ID, "run_1", 2, event.type, event.payload, event.created_at
    )
    assert not caplog.records  # the malformed one was this process's: dropped unread
