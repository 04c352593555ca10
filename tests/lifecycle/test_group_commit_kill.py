"""A `runql serve` process SIGKILLed while many createRuns are in flight, their batches being
committed: afterwards every run whose createRun was answered is stored whole, and nothing is
stored by halves (no thread, message group, message, content or event without its siblings)."""

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

import httpx
from sqlalchemy import text

from runql.storage.database import Database
from tests.processes import ROOT, free_port, runql

CREATE_AGENT = """mutation { createAgent(input: {name: "Echo", kind: "echo",
  config: {delay_ms: 0}}) { agent { id } } }"""
CREATE_RUN = """mutation($agent: ID!, $text: String!) {
  createRun(input: {agentId: $agent, content: {structured: {parts: [{text: $text},
    {text: "second part"}], attachments: [{type: IMAGE, url: "https://example.com/a.png"}]}}})
  { run { id } } }"""
CLIENTS = 48
ANSWERED_BEFORE_KILL = 150

# Rows that lack a sibling a createRun writes with them; each count must be 0.
HALVES = {
    "thread without a message group": """SELECT count(*) FROM threads t WHERE NOT EXISTS
        (SELECT 1 FROM message_groups g WHERE g.thread_id = t.id)""",
    "message group without its run": """SELECT count(*) FROM message_groups g WHERE NOT EXISTS
        (SELECT 1 FROM runs r WHERE r.trigger_message_group_id = g.id)""",
    "run without its message": """SELECT count(*) FROM runs r WHERE NOT EXISTS
        (SELECT 1 FROM messages m WHERE m.message_group_id = r.trigger_message_group_id)""",
    "message without its content": """SELECT count(*) FROM messages m WHERE NOT EXISTS
        (SELECT 1 FROM message_contents c WHERE c.message_item_id = m.id)""",
    "content without both parts": """SELECT count(*) FROM message_contents c WHERE
        (SELECT count(*) FROM content_parts p WHERE p.content_id = c.id) <> 2""",
    "content without its attachment": """SELECT count(*) FROM message_contents c WHERE
        NOT EXISTS (SELECT 1 FROM attachments a WHERE a.content_id = c.id)""",
    "run without its first event": """SELECT count(*) FROM runs r WHERE r.last_event_seq <> 1
        OR NOT EXISTS (SELECT 1 FROM run_events e WHERE e.run_id = r.id AND e.seq = 1)""",
}


async def _create_until_killed(
    client: httpx.AsyncClient, agent: str, server: subprocess.Popen[bytes]
) -> list[str]:
    """CLIENTS clients create runs back to back; the server is SIGKILLed once
    ANSWERED_BEFORE_KILL have been answered. The ids of the runs answered."""
    answered: list[str] = []
    killed = asyncio.Event()

    async def creator(number: int) -> None:
        for index in range(10_000):
            if killed.is_set():
                return
            variables = {"agent": agent, "text": f"client {number} message {index}"}
            try:
                response = await client.post(
                    "/graphql", json={"query": CREATE_RUN, "variables": variables}
                )
            except httpx.TransportError:
                return
            answered.append(response.json()["data"]["createRun"]["run"]["id"])
            if len(answered) >= ANSWERED_BEFORE_KILL and not killed.is_set():
                server.send_signal(signal.SIGKILL)
                killed.set()

    await asyncio.gather(*(creator(number) for number in range(CLIENTS)))
    assert killed.is_set()
    return answered


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "runql", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _count(database: Database, sql: str, **params: Any) -> int:
    async with database.read() as session:
        return int((await session.execute(text(sql), params)).scalar_one())


async def test_a_process_killed_in_a_group_commit_keeps_answered_runs_and_no_halves(
    database: Database,
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    env = {
        **os.environ,
        "RUNQL_DATABASE_URL": url,
        "RUNQL_ENV": "production",
        "RUNQL_WORKERS": "0",
        "RUNQL_RATE_LIMIT_PER_SECOND": "1000000",
        "RUNQL_RATE_LIMIT_BURST": "1000000",
    }
    key = (await asyncio.to_thread(runql, env, "keys", "create", "--name", "k")).split()[-1]
    port = free_port()
    server = await asyncio.to_thread(_serve, env, port)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
            limits=httpx.Limits(max_connections=CLIENTS),
        ) as client:
            for _ in range(300):
                try:
                    made = await client.post("/graphql", json={"query": CREATE_AGENT})
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            agent = made.json()["data"]["createAgent"]["agent"]["id"]
            answered = await _create_until_killed(client, agent, server)
    finally:
        server.kill()
        await asyncio.to_thread(server.wait, 30)

    stored = await _count(database, "SELECT count(*) FROM runs")
    assert stored >= len(answered)
    for run_id in answered:
        assert await _count(database, "SELECT count(*) FROM runs WHERE id = :id", id=run_id) == 1
    for fault, sql in HALVES.items():
        assert await _count(database, sql) == 0, fault
