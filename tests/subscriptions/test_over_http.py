"""Subscriptions over plain HTTP, driven by clients written by others through the examples in
examples/: the npm `graphql-sse` client (distinct connections mode) and Apollo Client 3's
HttpLink (multipart subscriptions), against one real server per database. The server has no
workers: a test moves its runs along itself, or starts an executor that runs the echo agent."""

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from runql.agents.egress import EgressPolicy
from runql.agents.registry import default_registry
from runql.auth.keys import create_key
from runql.enums import RunEventType, RunStatus
from runql.fanout.http_streams import TRANSPORTS
from runql.fanout.sockets import REVOKED_REASON
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.lifecycle.transitions import transition
from runql.operations import metrics
from runql.settings import Environment, Settings
from runql.storage.database import Database
from runql.storage.events import append_event
from tests.backends import PostgresBackend, SQLiteBackend
from tests.subscriptions.conftest import LIVE_SETTINGS, Live, live_server
from tests.subscriptions.test_revocation import _revoke_in_another_process

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = {
    "graphql-sse": "examples/graphql-sse.mjs",
    "multipart": "examples/apollo-multipart.mjs",
}  # by the gauge's protocol label
ACCEPT = {
    "graphql-sse": "text/event-stream",
    "multipart": 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0",application/json',
}
ALLOWED_ORIGIN = "https://app.example"
MAX_BODY = 8192
RUN_STATUS = "subscription($id: ID!) { runStatus(id: $id) { id status } }"

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed"),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(
    backend: SQLiteBackend | PostgresBackend,
    migrated_template: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Live]:
    url = await backend.copy(migrated_template, tmp_path_factory.mktemp("over-http"))
    database = Database.from_url(url)
    settings = (
        Settings(env=Environment.DEVELOPMENT)
        .replace(**LIVE_SETTINGS)
        .replace(workers=0, max_depth=4, max_body_bytes=MAX_BODY, allowed_origins=(ALLOWED_ORIGIN,))
    )
    try:
        async with live_server(database, settings, "over-http", {"delay_ms": 0}) as live:
            yield live
    finally:
        await database.dispose()
        backend.release(url)


class Client:
    """One run of an example script; its stdout read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, seconds: float = 20) -> str:
        assert self.process.stdout is not None
        found = await asyncio.wait_for(self.process.stdout.readline(), seconds)
        assert found, "the client ended early"
        return found.decode().rstrip("\n")

    async def rest(self, seconds: float = 30) -> tuple[list[str], str, int]:
        """Every line until the client exits, its stderr and its exit code."""
        stdout, stderr = await asyncio.wait_for(self.process.communicate(), seconds)
        assert self.process.returncode is not None
        return stdout.decode().splitlines(), stderr.decode(), self.process.returncode

    async def disconnect(self) -> None:
        self.process.kill()
        await self.process.wait()


@asynccontextmanager
async def client(
    live: Live, protocol: str, *args: str, key: str | None = None
) -> AsyncIterator[Client]:
    env = {**os.environ, "RUNQL_URL": live.http_url, "RUNQL_API_KEY": key or live.key}
    process = await asyncio.create_subprocess_exec(
        "node",
        CLIENTS[protocol],
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield Client(process)
    finally:
        if process.returncode is None:
            await Client(process).disconnect()


@asynccontextmanager
async def executor(live: Live) -> AsyncIterator[None]:
    """Workers that run the echo agent, on the server's hub, as the server's own would."""
    settings = Settings(env=Environment.DEVELOPMENT, workers=2, poll_seconds=0.2)
    running = Executor(
        live.database,
        default_registry(EgressPolicy.from_settings(settings)),
        ExecutorConfig.from_settings(settings),
        hub=live.hub,
    )
    await running.start()
    try:
        yield
    finally:
        await running.stop()


async def _until(condition: Callable[[], bool], seconds: float = 5) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (the server offers no event to wait on)
            await asyncio.sleep(0.01)


def _open_streams(protocol: str) -> float:
    return metrics.REGISTRY.get_sample_value("runql_http_streams_open", {"protocol": protocol}) or 0


async def _write(live: Live, change: Callable[..., Awaitable[object]], *args: object) -> None:
    async with live.database.write() as session:
        await change(session, *args)


@pytest.mark.parametrize("protocol", CLIENTS)
async def test_run_status_sees_the_echo_agent_take_a_run_from_pending_to_success(
    live: Live, protocol: str
) -> None:
    run_id = await live.create_run()
    async with client(live, protocol, run_id) as following:
        first = json.loads(await following.line())
        async with executor(live):
            lines, stderr, code = await following.rest()
    assert code == 0, stderr
    assert lines[-1] == "complete"
    results = [first, *map(json.loads, lines[:-1])]
    assert [result.get("errors") for result in results] == [None] * len(results)
    assert [r["data"]["runStatus"]["status"] for r in results] == ["PENDING", "RUNNING", "SUCCESS"]
    assert {r["data"]["runStatus"]["id"] for r in results} == {run_id}


async def _events_while_writing(live: Live, protocol: str, run_id: str) -> list[int]:
    """The run's events as a client sees them when it takes 3, disconnects and resumes with
    `after` while the run goes on being written."""

    async def write_on() -> None:
        await _write(live, transition, run_id, RunStatus.RUNNING)
        for index in range(40):
            await _write(live, append_event, run_id, RunEventType.MESSAGE_ADDED, {"i": index})
            await asyncio.sleep(0.02)
        await _write(live, transition, run_id, RunStatus.SUCCESS)

    writer = asyncio.create_task(write_on())
    try:
        async with client(live, protocol, run_id, "--after", "0", "--take", "3") as first:
            taken, stderr, code = await first.rest()
        assert code == 0, stderr
        seen = [json.loads(line)["data"]["runEvents"]["seq"] for line in taken]
        async with client(live, protocol, run_id, "--after", str(seen[-1])) as resumed:
            lines, stderr, code = await resumed.rest()
        assert code == 0, stderr
        assert lines[-1] == "complete"
        return seen + [json.loads(line)["data"]["runEvents"]["seq"] for line in lines[:-1]]
    finally:
        await writer


@pytest.mark.parametrize("protocol", CLIENTS)
async def test_run_events_resumes_exactly_after_a_disconnect(live: Live, protocol: str) -> None:
    run_id = await live.create_run()
    seqs = await _events_while_writing(live, protocol, run_id)
    # created (1), running (2), 40 messages (3-42), success (43): each once, in order
    assert seqs == list(range(1, 44))


@pytest.mark.parametrize("protocol", CLIENTS)
async def test_a_bad_key_is_refused(live: Live, protocol: str) -> None:
    run_id = await live.create_run()
    async with client(live, protocol, run_id, key="runql_sk_not-a-key") as refused:
        lines, stderr, code = await refused.rest()
    assert code == 1
    assert lines == []
    assert "401" in stderr
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            live.http_url,
            headers={"Accept": ACCEPT[protocol]},
            json={"query": RUN_STATUS, "variables": {"id": run_id}},
        )
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("protocol", CLIENTS)
async def test_a_client_that_disconnects_frees_its_subscription_at_once(
    live: Live, protocol: str
) -> None:
    run_id = await live.create_run()  # no worker: it stays PENDING, the stream stays open
    before = live.hub.subscriber_count
    async with client(live, protocol, run_id) as following:
        assert json.loads(await following.line())["data"]["runStatus"]["status"] == "PENDING"
        assert live.hub.subscriber_count == before + 1
        assert _open_streams(protocol) == 1
        await following.disconnect()
        await _until(
            lambda: live.hub.subscriber_count == before and not _open_streams(protocol), seconds=1
        )


async def test_revoking_the_key_ends_its_streams(live: Live) -> None:
    run_id = await live.create_run()  # stays PENDING: only the revocation ends the streams
    doomed = await create_key(live.database, "doomed")
    before = live.hub.subscriber_count
    async with (
        client(live, "graphql-sse", run_id, key=doomed.secret) as sse,
        client(live, "multipart", run_id, key=doomed.secret) as multipart,
    ):
        for following in (sse, multipart):
            assert json.loads(await following.line())["data"]["runStatus"]["status"] == "PENDING"
        await _revoke_in_another_process(live.database, doomed.row.id)
        for following in (sse, multipart):
            lines, stderr, _code = await following.rest(seconds=10)
            assert REVOKED_REASON in "\n".join(lines) + stderr
    await _until(
        lambda: (
            live.hub.subscriber_count == before
            and not _open_streams("graphql-sse")
            and not _open_streams("multipart")
        )
    )


async def _first_event(
    live: Live, protocol: str, document: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """The status and the first chunk of text of a raw subscription request."""
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream(
            "POST",
            live.http_url,
            json={"query": document},
            headers={
                "Authorization": f"Bearer {live.key}",
                "Accept": ACCEPT[protocol],
                **(headers or {}),
            },
        ) as answer,
    ):
        text = ""
        async for chunk in answer.aiter_text():
            text += chunk
            if '"errors"' in text or '"data"' in text:
                break
        return answer.status_code, text


@pytest.mark.parametrize("protocol", CLIENTS)
async def test_the_query_limits_apply(live: Live, protocol: str) -> None:
    document = (
        'subscription { runStatus(id: "run_AAAAAAAAAAAAAAAAAAAA") { thread { runs { '
        "edges { node { id } } } } } }"
    )  # 6 levels; the server allows 4
    status, text = await _first_event(live, protocol, document)
    assert status == 200
    assert '"code":"QUERY_TOO_COMPLEX"' in text
    assert '"data"' not in text


@pytest.mark.parametrize("protocol", CLIENTS)
async def test_a_body_over_the_cap_is_refused(live: Live, protocol: str) -> None:
    padding = "#" + "x" * MAX_BODY + "\n"  # a comment: the document is valid but too big
    status, text = await _first_event(live, protocol, padding + RUN_STATUS)
    assert status == 413
    assert json.loads(text)["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("protocol", CLIENTS)
async def test_pages_on_other_origins_need_to_be_allowed(live: Live, protocol: str) -> None:
    run_id = await live.create_run()
    document = f'subscription {{ runStatus(id: "{run_id}") {{ id status }} }}'
    status, text = await _first_event(
        live, protocol, document, {"Origin": "https://elsewhere.example"}
    )
    assert status == 403
    assert json.loads(text)["errors"][0]["extensions"]["code"] == "FORBIDDEN_ORIGIN"
    status, text = await _first_event(live, protocol, document, {"Origin": ALLOWED_ORIGIN})
    assert status == 200
    assert '"status":"PENDING"' in text


async def test_a_client_that_prefers_json_gets_json() -> None:
    """urql lists text/event-stream and multipart/mixed after the JSON types for its queries:
    they stay plain JSON (and the fast lane's)."""
    urql = (
        "application/graphql-response+json, application/graphql+json, application/json, "
        "text/event-stream, multipart/mixed"
    )
    transports = [transport() for transport in TRANSPORTS.values()]
    assert not any(transport.accepts(urql) for transport in transports)
    assert [
        transport.accepts("text/event-stream, application/json;q=0.9") for transport in transports
    ] == [False, True]
