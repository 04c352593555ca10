"""Generated text in every write path of a real server, on SQLite and PostgreSQL: lone
surrogates, NUL, non-characters, right-to-left marks and 4-byte characters in every text field
of createRun, createAgent, updateAgent, POST /runs, a websocket subscription's variables and a
webhook agent's reply (from a real loopback server). After each example every read path of the
organization answers without error (tests/text/reads.py). Asserted throughout: no 5xx, no
error body that is not JSON, no INTERNAL_SERVER_ERROR, and every refusal wrote nothing."""

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import SQLModel

from runql.agents import catalog
from runql.agents.egress import EgressPolicy
from runql.agents.registry import default_registry
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.settings import LOOPBACK
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID, AgentRow, RunRow
from tests.agents.test_webhook import Hook, Scripted, hook
from tests.lifecycle.conftest import reload
from tests.subscriptions.client import TRANSPORT_WS, GraphQLSocket
from tests.subscriptions.conftest import Live
from tests.text.reads import read_everything

LOOPBACK_ALLOWED = EgressPolicy(LOOPBACK)  # the test's webhook servers are on loopback

__all__ = ["hook"]

SPECIAL = [
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\x00",
    "\ufdd0",
    "\ufffe",
    "\uffff",
    "\U0001fffe",
    "\u202e",
    "\u200f",
    "\u202a",
    "𝄞",
    "😀",
    "\U0010ffff",
    "é",
    "a",
    " ",
]
SPECIALS = st.sampled_from(SPECIAL)
ANY_TEXT = st.text(st.characters(codec=None), max_size=4)
# Most texts carry at least one of the characters above, somewhere in other text.
TEXT = st.one_of(
    st.builds(
        lambda before, special, after: before + special + after, ANY_TEXT, SPECIALS, ANY_TEXT
    ),
    st.text(SPECIALS, max_size=4),
    ANY_TEXT,
)
NON_BLANK = TEXT.map(lambda text: "x" + text)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
OBJECTS = st.dictionaries(TEXT, JSON, max_size=3)

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure prints its example
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

CREATE_RUN = """mutation($input: CreateRunInput!) { createRun(input: $input) {
  run { id status metadata rawInputs } } }"""
CREATE_AGENT = """mutation($input: CreateAgentInput!) { createAgent(input: $input) {
  agent { id name config } } }"""
UPDATE_AGENT = """mutation($input: UpdateAgentInput!) { updateAgent(input: $input) {
  agent { id name } } }"""
RUN_STATUS = "subscription($id: ID!) { runStatus(id: $id) { id status metadata } }"


async def row_counts(database: Database) -> tuple[int, ...]:
    """The row count of every table, in one statement."""
    counts = ", ".join(
        f"(SELECT count(*) FROM {table.name})" for table in SQLModel.metadata.sorted_tables
    )
    async with database.read() as session:
        return tuple((await session.execute(text(f"SELECT {counts}"))).one())


class Writer:
    """Sends writes as a client would (JSON with every non-ASCII character escaped, so a lone
    surrogate goes as `\\ud800`) and checks each answer."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.client = httpx.AsyncClient(
            base_url=live.http_url.removesuffix("/graphql"),
            timeout=30,
            headers={"Authorization": f"Bearer {live.key}"},
        )

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        response = await self.client.post(
            path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/"), response.text
        return response.status_code, response.json()

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The body of an operation; asserts that a refusal wrote nothing."""
        before = await row_counts(self.live.database)
        _, body = await self.post("/graphql", {"query": query, "variables": variables})
        codes = [error["extensions"]["code"] for error in body.get("errors", [])]
        assert "INTERNAL_SERVER_ERROR" not in codes, body
        if codes:
            assert await row_counts(self.live.database) == before, body
        return dict(body)

    async def rest(self, body: Any) -> None:
        before = await row_counts(self.live.database)
        status, answer = await self.post("/runs", body)
        assert "code" in answer or status in (200, 201), answer
        if status >= 400:
            assert await row_counts(self.live.database) == before, answer


@pytest.fixture
async def webhook(quiet_live: Live, hook: Hook) -> AgentRow:
    return await catalog.create_agent(
        quiet_live.database,
        default_registry(LOOPBACK_ALLOWED),
        DEFAULT_ORG_ID,
        name="Hook",
        kind="webhook",
        config={"url": hook.url, "retries": 0},
    )


async def _drain(database: Database) -> None:
    """Execute every pending run (the server has no workers: counts stay still meanwhile)."""
    executor = Executor(
        database,
        default_registry(LOOPBACK_ALLOWED),
        ExecutorConfig(concurrency=1, lease_seconds=30, poll_seconds=0.05),
    )
    try:
        for _ in range(50):
            if not await executor.run_once():
                return
    finally:
        await executor.agents.close()


async def _subscribe(live: Live, run_id: str) -> None:
    socket = await GraphQLSocket.open(live.ws_url, live.key, TRANSPORT_WS)
    try:
        outcome = await socket.collect(
            await socket.start(RUN_STATUS, {"id": run_id}), until=1, seconds=10
        )
    finally:
        await socket.close()
    for error in outcome.errors:
        for item in error if isinstance(error, list) else [error]:
            assert item["extensions"]["code"] != "INTERNAL_SERVER_ERROR", outcome.errors
    assert outcome.errors or outcome.data


def _run_input(agent_id: str, draw: Any) -> dict[str, Any]:
    return {
        "agentId": agent_id,
        "metadata": draw(OBJECTS),
        "rawInputs": draw(OBJECTS),
        "idempotencyKey": draw(st.none() | NON_BLANK),
        "content": draw(
            st.one_of(
                st.builds(lambda text: {"text": text}, NON_BLANK),
                st.builds(
                    lambda text, file_id, caption: {
                        "structured": {
                            "parts": [{"text": text}],
                            "attachments": [
                                {"type": "FILE", "fileId": file_id, "caption": caption},
                                {"type": "LINK", "url": "https://example.com/" + caption},
                            ],
                        }
                    },
                    NON_BLANK,
                    NON_BLANK,
                    TEXT,
                ),
            )
        ),
    }


def _rest_body(agent_id: str, draw: Any) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "content": draw(NON_BLANK),
        "metadata": draw(OBJECTS),
        "raw_inputs": draw(OBJECTS),
        "language": draw(st.none() | TEXT),
    }


@SETTINGS
@given(data=st.data())
async def test_no_text_breaks_a_write_or_a_later_read(
    data: st.DataObject, quiet_live: Live, hook: Hook, webhook: AgentRow
) -> None:
    live, draw = quiet_live, data.draw
    writer = Writer(live)
    try:
        await writer.graphql(CREATE_RUN, {"input": _run_input(live.echo.id, draw)})
        await writer.graphql(
            CREATE_AGENT,
            {"input": {"name": draw(NON_BLANK), "kind": "echo", "config": {"delay_ms": 0}}},
        )
        await writer.graphql(
            CREATE_AGENT,
            {
                "input": {
                    "name": "hook",
                    "kind": "webhook",
                    "config": {
                        "url": "http://127.0.0.1:9/" + draw(TEXT),
                        "headers": draw(st.dictionaries(NON_BLANK, TEXT, max_size=2)),
                    },
                }
            },
        )
        await writer.graphql(UPDATE_AGENT, {"input": {"id": live.echo.id, "name": draw(NON_BLANK)}})
        await writer.rest(_rest_body(live.echo.id, draw))
        await _subscribe(live, draw(st.sampled_from(["run_", ""])) + draw(TEXT))
        hook.reply(
            Scripted(json={"text": draw(NON_BLANK)}),
            Scripted(
                json={
                    "messages": [{"parts": [{"type": "text", "text": draw(NON_BLANK)}]}],
                    "attached_items": [{"key": draw(NON_BLANK), "value": draw(JSON)}],
                }
            ),
        )
        hooked = [
            await writer.graphql(
                CREATE_RUN, {"input": {"agentId": webhook.id, "content": {"text": "hi"}}}
            )
            for _ in range(2)
        ]
        await _drain(live.database)
        for body in hooked:
            run: RunRow = await reload(live.database, body["data"]["createRun"]["run"]["id"])
            assert run.status in ("success", "error"), run.status
    finally:
        await writer.client.aclose()
    base = live.http_url.removesuffix("/graphql")
    answers = await read_everything(base, live.ws_url, live.key, runs=20, replay_runs=1)
    assert answers.problems == []
