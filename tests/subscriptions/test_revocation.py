"""Revoking a key closes every websocket opened with it (4403) within a second, in every
process: the revocation comes from `runql keys revoke`, another process, as it does in use."""

import asyncio
import os
import sys
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from runql.agents import catalog
from runql.agents.registry import default_registry
from runql.auth.keys import create_key
from runql.settings import Settings
from runql.storage.database import Database
from runql.storage.tables import DEFAULT_ORG_ID
from tests.processes import ROOT
from tests.subscriptions.client import LEGACY_WS, TRANSPORT_WS, GraphQLSocket
from tests.subscriptions.conftest import CREATE_RUN, serve

RUNS = "subscription { runs { id status } }"
RUN_STATUS = "subscription($id: ID!) { runStatus(id: $id) { status } }"
WITHIN_SECONDS = 1.0


async def _revoke_in_another_process(database: Database, key_id: str) -> float:
    """`runql keys revoke KEY_ID` to completion; the moment it exited."""
    url = database.engine.url.render_as_string(hide_password=False)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "runql",
        "keys",
        "revoke",
        key_id,
        cwd=ROOT,
        env={**os.environ, "RUNQL_DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err
    assert b"is revoked" in out
    return time.monotonic()


async def _closed_with(socket: GraphQLSocket, seconds: float = 10) -> tuple[int, float]:
    """The close code of the socket, and when it came (results before it are read past)."""
    with pytest.raises(ConnectionClosed) as closed:
        await _read_all(socket, seconds)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, time.monotonic()


async def _read_all(socket: GraphQLSocket, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while True:
            await socket.receive()


async def _subscribed(ws_url: str, key: str, protocol: str) -> GraphQLSocket:
    socket = await GraphQLSocket.open(ws_url, key, protocol)
    await socket.start(RUNS)
    return socket


@pytest.fixture
def revoking_settings(settings: Settings) -> Settings:
    return settings.replace(workers=0, ws_init_timeout_seconds=5.0)


async def _create_run(http_url: str, key: str, agent_id: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            http_url,
            headers={"Authorization": f"Bearer {key}"},
            json={"query": CREATE_RUN, "variables": {"agent": agent_id, "text": "revocation"}},
        )
    return str(response.json()["data"]["createRun"]["run"]["id"])


async def _watching(ws_url: str, key: str, protocol: str, run_id: str) -> GraphQLSocket:
    """A socket with a run's status subscription (which joins its shared stream) and the
    organization's runs feed."""
    socket = await GraphQLSocket.open(ws_url, key, protocol)
    first = await socket.collect(await socket.start(RUN_STATUS, {"id": run_id}), until=1)
    assert first.data == [{"runStatus": {"status": "PENDING"}}]
    await socket.start(RUNS)
    return socket


async def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (the server offers no event to wait on)
            await asyncio.sleep(0.01)


async def test_a_revoked_keys_sockets_close_with_4403_within_a_second(
    database: Database, revoking_settings: Settings
) -> None:
    echo = await catalog.create_agent(
        database, default_registry(), DEFAULT_ORG_ID, name="E", kind="echo", config={}
    )
    doomed = await create_key(database, "doomed")
    kept = (await create_key(database, "kept")).secret
    async with serve(database, revoking_settings) as (address, _hub, streams):
        ws_url, http_url = f"ws://{address}/graphql", f"http://{address}/graphql"
        run_id = await _create_run(http_url, kept, echo.id)
        sockets = [
            await _watching(ws_url, doomed.secret, protocol, run_id)
            for protocol in (TRANSPORT_WS, LEGACY_WS, TRANSPORT_WS)
        ]
        idle = await GraphQLSocket.open(ws_url, doomed.secret, LEGACY_WS)
        other = await _watching(ws_url, kept, TRANSPORT_WS, run_id)
        await _until(lambda: streams.member_count == 4)
        revoked_at = await _revoke_in_another_process(database, doomed.row.id)
        closes = await asyncio.gather(*(_closed_with(s) for s in [*sockets, idle]))
        await _until(lambda: streams.member_count == 1)  # the revoked key's members left
        new_run = await _create_run(http_url, kept, echo.id)
        feed = await other.collect("2", until=1)
        await other.close()
    assert [code for code, _ in closes] == [4403] * 4
    assert max(at for _, at in closes) - revoked_at < WITHIN_SECONDS
    assert feed.data[0]["runs"]["id"] == new_run  # the other key's subscriber goes on


async def test_two_servers_close_a_revoked_keys_sockets(
    database: Database, revoking_settings: Settings
) -> None:
    if database.is_sqlite:
        pytest.skip("two server processes share a database on PostgreSQL")
    doomed = await create_key(database, "doomed")
    async with (
        serve(database, revoking_settings) as (first, _h1, _s1),
        serve(database, revoking_settings) as (second, _h2, _s2),
    ):
        sockets = [
            await _subscribed(f"ws://{address}/graphql", doomed.secret, protocol)
            for address in (first, second)
            for protocol in (TRANSPORT_WS, LEGACY_WS)
        ]
        revoked_at = await _revoke_in_another_process(database, doomed.row.id)
        closes = await asyncio.gather(*(_closed_with(s) for s in sockets))
    assert [code for code, _ in closes] == [4403] * 4
    assert max(at for _, at in closes) - revoked_at < WITHIN_SECONDS


class _Held:
    """Stands for a socket in OpenSockets: notes that it was closed."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def close_revoked(self) -> None:
        self.closed.set()


async def test_revocations_the_notice_may_have_missed_are_looked_up(database: Database) -> None:
    """As after PostgreSQL's LISTEN connection came back: revoked keys' sockets close."""
    from sqlalchemy import update
    from sqlmodel import col

    from runql.auth.revocation import Revocations
    from runql.fanout.sockets import OpenSockets
    from runql.storage.tables import ApiKeyRow
    from runql.storage.types import utcnow

    doomed, kept = await create_key(database, "doomed"), await create_key(database, "kept")
    revocations = Revocations()
    sockets = OpenSockets(database, revocations)
    held = {key.row.id: _Held() for key in (doomed, kept)}
    for key_id, socket in held.items():
        sockets.hold(key_id, socket)
    async with database.write() as session:  # revoked unheard: no notice at all
        await session.execute(
            update(ApiKeyRow).where(col(ApiKeyRow.id) == doomed.row.id).values(revoked_at=utcnow())
        )
    revocations.missed()
    async with asyncio.timeout(5):
        await held[doomed.row.id].closed.wait()
    assert not held[kept.row.id].closed.is_set()
    assert len(sockets) == 1


async def test_a_socket_held_after_its_keys_revocation_was_heard_closes(
    database: Database,
) -> None:
    """The key was checked, then revoked before the socket was held: it still closes."""
    from runql.auth.revocation import Revocations
    from runql.fanout.sockets import OpenSockets

    revocations = Revocations()
    sockets = OpenSockets(database, revocations)
    late = _Held()
    revocations.revoked("key_checked_just_before")
    sockets.hold("key_checked_just_before", late)
    async with asyncio.timeout(5):
        await late.closed.wait()
    assert len(sockets) == 0
