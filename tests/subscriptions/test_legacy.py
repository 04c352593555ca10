"""The legacy graphql-ws protocol (subscriptions-transport-ws): the same connection_init timeout
as graphql-transport-ws, any operation over `start`, and nothing left unhandled when a client
drops its socket."""

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.hardening.server import running_server
from tests.subscriptions.client import LEGACY_WS, GraphQLSocket
from tests.subscriptions.conftest import CREATE_RUN, Live

RUN_STATUS = "subscription($id: ID!) { runStatus(id: $id) { status } }"
RUN = "query($id: ID!) { node(id: $id) { ... on Run { id status } } }"


async def test_no_init_in_time_is_a_connection_error_and_4408(live: Live) -> None:
    async with connect(live.ws_url, subprotocols=[LEGACY_WS]) as socket:  # type: ignore[list-item]
        async with asyncio.timeout(5):  # the fixture's timeout is 1 s
            refusal = json.loads(await socket.recv())
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()
    assert refusal == {
        "type": "connection_error",
        "payload": {
            "message": "Connection initialisation timeout",
            "code": "CONNECTION_INIT_TIMEOUT",
        },
    }
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4408


async def test_an_initialised_socket_outlives_the_init_timeout(live: Live) -> None:
    socket = await GraphQLSocket.open(live.ws_url, live.key, LEGACY_WS)
    await asyncio.sleep(1.5)
    outcome = await socket.collect(await socket.start("{ __typename }"))
    await socket.close()
    assert outcome.data == [{"__typename": "Query"}]


async def test_a_query_and_a_mutation_answer_data_then_complete(quiet_live: Live) -> None:
    socket = await GraphQLSocket.open(quiet_live.ws_url, quiet_live.key, LEGACY_WS)
    created = await socket.collect(
        await socket.start(CREATE_RUN, {"agent": quiet_live.echo.id, "text": "over graphql-ws"})
    )
    run_id = created.data[0]["createRun"]["run"]["id"]
    read = await socket.collect(await socket.start(RUN, {"id": run_id}))
    await socket.close()
    assert created.completed
    assert not created.errors
    assert read.completed
    assert not read.errors
    assert read.data == [{"node": {"id": run_id, "status": "PENDING"}}]
    stored = await quiet_live.gql(RUN, {"id": run_id})  # over HTTP: the mutation was written
    assert stored["node"]["id"] == run_id


async def test_a_bad_query_is_a_coded_error_not_an_internal_one(quiet_live: Live) -> None:
    socket = await GraphQLSocket.open(quiet_live.ws_url, quiet_live.key, LEGACY_WS)
    outcome = await socket.collect(await socket.start("{ runs { nope } }"))
    await socket.close()
    assert outcome.errors[0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_a_start_without_its_payload_is_a_coded_error(quiet_live: Live) -> None:
    socket = await GraphQLSocket.open(quiet_live.ws_url, quiet_live.key, LEGACY_WS)
    await socket.send({"type": "start", "id": "1"})
    refusal = await socket.receive()
    while refusal["type"] == "ka":  # keep-alives come at any time
        refusal = await socket.receive()
    outcome = await socket.collect(await socket.start("{ __typename }"))  # the socket goes on
    await socket.close()
    assert refusal["type"] == "error"
    assert refusal["id"] == "1"
    assert refusal["payload"]["extensions"] == {"code": "BAD_REQUEST"}
    assert outcome.data == [{"__typename": "Query"}]


def _drop_sockets(url: str, key: str, run_ids: list[str], count: int) -> None:
    """Open `count` legacy sockets, start operations on each and drop it without a close."""

    async def drop() -> None:
        for _ in range(count):
            socket = await GraphQLSocket.open(url.replace("http", "ws"), key, LEGACY_WS)
            for run_id in run_ids:
                await socket.start(RUN_STATUS, {"id": run_id})
            await socket.start("{ __typename }")
            socket.connection.transport.abort()
        await asyncio.sleep(1)

    asyncio.run(drop())


def test_dropped_sockets_leave_no_unhandled_task_error(tmp_path: Path) -> None:
    with running_server(tmp_path, demo_runs=5) as server:
        headers = {"Authorization": f"Bearer {server.key}"}
        runs = httpx.post(
            server.url,
            headers=headers,
            json={"query": "{ runs(first: 3) { edges { node { id } } } }"},
        ).json()
        run_ids = [edge["node"]["id"] for edge in runs["data"]["runs"]["edges"]]
        _drop_sockets(server.url, server.key, run_ids, 20)
        alive = httpx.post(server.url, json={"query": "{ __typename }"}, headers=headers)
    log = server.log.read_text()
    assert alive.json() == {"data": {"__typename": "Query"}}
    assert "never retrieved" not in log
    assert '"level":"error"' not in log, log
